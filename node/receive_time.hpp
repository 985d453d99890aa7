// Kernel receive timestamps for UDP datagrams (Linux SO_TIMESTAMPNS / SIOCGSTAMPNS).
#pragma once

#include <cstdint>

namespace rtpnode {

/// Thread: loop (any thread that owns `fd`). Asks the kernel to timestamp every datagram the
/// socket `fd` receives (the first SIOCGSTAMPNS ioctl does, socket(7)); the kernel may take a
/// moment to start. Returns false if `fd` is not a socket that supports it, in which case
/// receive_time_ns() falls back to its `now`.
bool enable_receive_timestamps(int fd) noexcept;

/// Thread: loop (the thread that just read from `fd`). The arrival time of the datagram last
/// read from `fd`, on the scale of `now` (a CLOCK_MONOTONIC instant in ns taken just before):
/// the kernel's receive timestamp (SIOCGSTAMPNS, on CLOCK_REALTIME) moved back by its age. So
/// RFC 3550 §6.4.1 interarrival jitter and the jitter buffer see the network's timing, not the
/// event loop's: a loop busy for 5 ms would otherwise add up to 5 ms to the packets behind.
/// Returns `now` when the kernel has no stamp (an unstamped datagram reads as stamped at the
/// present), or when the age is outside [0, 1 s] (the wall clock was stepped in between).
[[nodiscard]] std::int64_t receive_time_ns(int fd, std::int64_t now) noexcept;

}  // namespace rtpnode
