#include "node/rt_scheduling.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace rtpnode {

std::vector<std::string> enter_realtime(int priority) {
  std::vector<std::string> warnings;
  if (priority <= 0) return warnings;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // A sanitizer's shadow memory spans terabytes: locking it would exhaust the machine.
  warnings.push_back("memory not locked in a sanitizer build");
  if (false) {
#else
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
#endif
    rlimit lim{};
    getrlimit(RLIMIT_MEMLOCK, &lim);
    warnings.push_back(
        std::string("cannot lock memory (mlockall: ") + std::strerror(errno) + "; RLIMIT_MEMLOCK " +
        (lim.rlim_cur == RLIM_INFINITY ? std::string("unlimited")
                                       : std::to_string(lim.rlim_cur / 1024) + " kB") +
        "): set LimitMEMLOCK=infinity or `ulimit -l unlimited`");
  }
  sched_param sp{};
  sp.sched_priority = std::max(1, priority - 10);
  if (const int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp); e != 0)
    warnings.push_back(std::string("cannot run the loop thread at SCHED_FIFO ") +
                       std::to_string(sp.sched_priority) + " (" + std::strerror(e) +
                       "): set LimitRTPRIO=95 or run with CAP_SYS_NICE");
  return warnings;
}

}  // namespace rtpnode
