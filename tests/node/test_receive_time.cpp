#include "node/receive_time.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <thread>

using namespace rtpnode;

namespace {

std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

/// A UDP socket on 127.0.0.1 that sends one datagram to itself.
struct SelfSocket {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  SelfSocket() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  ~SelfSocket() { close(fd); }
  void send_one() {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    const char byte = 1;
    ASSERT_EQ(sendto(fd, &byte, 1, 0, reinterpret_cast<sockaddr*>(&a), len), 1);
  }
  void receive_one() {
    char byte = 0;
    ASSERT_EQ(recv(fd, &byte, 1, 0), 1);
  }
};

}  // namespace

TEST(ReceiveTime, IsWhenTheKernelReceivedTheDatagramNotWhenItWasRead) {
  SelfSocket s;
  ASSERT_TRUE(enable_receive_timestamps(s.fd));
  // The kernel may switch stamping on a moment later (a deferred static key when no other socket
  // uses it); until then a datagram reads as received now. Wait for the first stamped one.
  bool stamped = false;
  for (int attempt = 0; attempt < 100 && !stamped; ++attempt) {
    s.send_one();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    s.receive_one();
    const std::int64_t now = monotonic_ns();
    stamped = now - receive_time_ns(s.fd, now) >= 4'000'000;
  }
  ASSERT_TRUE(stamped) << "the kernel never stamped a datagram";
  s.send_one();
  const std::int64_t sent = monotonic_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the loop is busy elsewhere
  s.receive_one();
  const std::int64_t now = monotonic_ns();
  const std::int64_t arrival = receive_time_ns(s.fd, now);
  EXPECT_LE(now - arrival,
            now - sent + 1'000'000);     // not before it was sent (1 ms for clock reads)
  EXPECT_GE(now - arrival, 30'000'000);  // 30 ms before it was read
}

TEST(ReceiveTime, FallsBackToNowWithoutAKernelStamp) {
  EXPECT_FALSE(enable_receive_timestamps(-1));
  EXPECT_EQ(receive_time_ns(-1, 42), 42);  // not a socket
  int pipe_fd[2] = {-1, -1};
  ASSERT_EQ(pipe(pipe_fd), 0);
  EXPECT_FALSE(enable_receive_timestamps(pipe_fd[0]));
  EXPECT_EQ(receive_time_ns(pipe_fd[0], 42), 42);
  close(pipe_fd[0]);
  close(pipe_fd[1]);
}
