#include "node/receive_time.hpp"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <ctime>

namespace rtpnode {

bool enable_receive_timestamps(int fd) noexcept {
  // The first SIOCGSTAMPNS turns stamping on for the socket (ENOENT: nothing received yet).
  // Not SO_TIMESTAMPNS: with it the kernel hands stamps only to recvmsg() as control messages,
  // which libuv does not ask for, and the ioctl has none to return.
  timespec stamp{};
  return ioctl(fd, SIOCGSTAMPNS, &stamp) == 0 || errno == ENOENT;
}

std::int64_t receive_time_ns(int fd, std::int64_t now) noexcept {
  timespec stamp{}, real{};
  if (ioctl(fd, SIOCGSTAMPNS, &stamp) != 0 || clock_gettime(CLOCK_REALTIME, &real) != 0) return now;
  const std::int64_t age = (static_cast<std::int64_t>(real.tv_sec) - stamp.tv_sec) * 1'000'000'000 +
                           (real.tv_nsec - stamp.tv_nsec);
  return age >= 0 && age <= 1'000'000'000 ? now - age : now;
}

}  // namespace rtpnode
