// oRTP's log lines (bctoolbox logging) routed through a once-per-kind filter (issue #16 finding
// 8: 40 k malformed RTCP datagrams made oRTP print 4 423 SDES warnings). A kind is one format
// string at one level: its first line is printed on stderr as "rtpnode: oRTP warning: ...",
// later ones are counted only. Debug and info lines are dropped.
#pragma once

#include <cstdint>

namespace rtpnode {

/// Thread: any, once at start-up before oRTP is used (rtpnode's and rtpsend's main). Installs
/// the handler for every bctoolbox log domain and sets the level mask to warning and above.
void ortp_log_route();

/// Thread: any; lock-free. Lines oRTP logged at warning level or above since ortp_log_route(),
/// and how many of them were not printed (a kind already printed).
[[nodiscard]] std::uint64_t ortp_log_lines() noexcept;
[[nodiscard]] std::uint64_t ortp_log_suppressed() noexcept;

}  // namespace rtpnode
