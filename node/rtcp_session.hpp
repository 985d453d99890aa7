// The receiver's side of the RTCP session (RFC 3550 §6): the latest Sender Report of every
// sender (for sync, and LSR/DLSR in our reports), the report interval (§6.2, §6.3, A.7) and the
// Receiver Reports themselves. Sockets and timers stay with the node: this part decides what to
// send, where and when. Thread: loop only; no I/O, so tests drive it with a fake clock.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "rtp/rtcp.hpp"
#include "node/sync_timeline.hpp"
#include "rtp/units.hpp"

namespace rtpnode {

/// The latest SR of one sender, as held for sync and for the LSR/DLSR of our RR blocks.
struct HeldSenderReport {
  std::int64_t ntp_ns = 0;   ///< its NTP timestamp, ns since 1900
  std::uint32_t rtp_ts = 0;  ///< the RTP timestamp sampled at that instant
  std::uint32_t lsr = 0;     ///< middle 32 bits of its NTP timestamp (RR LSR)
  mono_ns_t received = 0;    ///< when it arrived (RR DLSR)
  sockaddr_storage from{};   ///< where this sender's RTCP comes from (RRs go there)
};

/// One source an RR reports on: its report block (Source::take_report_block), its key
/// (port << 32 | SSRC) and where its RTP comes from.
struct ReportTarget {
  RtcpReportBlock block;
  std::uint64_t key = 0;
  sockaddr_storage rtp_from{};
};

/// RR compounds for one listen port and the addresses to send each to.
struct OutgoingReports {
  std::vector<std::vector<std::uint8_t>> packets;  ///< RR + SDES CNAME, at most 31 blocks each
  std::vector<sockaddr_storage> destinations;      ///< every packet goes to each, deduplicated
};

class RtcpSession {
 public:
  /// `seed` draws the reporter SSRC and the interval randomisation; `cname` is our SDES CNAME;
  /// at most `max_held` SRs are held (a flood of SSRCs clears them rather than growing).
  RtcpSession(std::uint64_t seed, std::string cname, std::size_t max_held);

  [[nodiscard]] std::uint32_t reporter_ssrc() const noexcept { return reporter_ssrc_; }
  /// Any datagram of the session arrived (RTP, raw or RTCP; `bytes` without UDP/IP headers):
  /// the session bandwidth of §6.2.
  void on_datagram(std::size_t bytes, mono_ns_t now) noexcept;
  /// A valid RTCP compound of `bytes` arrived: the average RTCP size of §6.3.3.
  void on_compound(std::size_t bytes) noexcept;
  /// Holds `sr` of source `key`, received from `from` at `now`; returns what was held.
  const HeldSenderReport& hold(std::uint64_t key, const RtcpSenderReport& sr, const sockaddr* from,
                               mono_ns_t now);
  /// The SR held for `key`, or null.
  [[nodiscard]] const HeldSenderReport* held(std::uint64_t key) const;
  /// Forgets the SR of `key` (its sender said BYE, or it came from another host than its RTP).
  void forget(std::uint64_t key) { held_.erase(key); }
  /// Seconds to the next report (RFC 3550 §6.3.1, A.7): 5 % of the measured session bandwidth,
  /// receivers' share, at least `min_interval` (half of it before the first report),
  /// randomised over [0.5, 1.5] x and divided by e - 3/2.
  double next_interval_s(std::size_t senders, std::chrono::nanoseconds min_interval, mono_ns_t now);
  /// The RRs about `targets` (the sources of one listen port) sent at `now`: LSR/DLSR from the
  /// held SRs; each goes to where its sender's RTCP came from, or without an SR to its RTP
  /// address's port + 1 (RFC 3550 §11).
  [[nodiscard]] OutgoingReports build(const std::vector<ReportTarget>& targets,
                                      mono_ns_t now) const;
  /// A compound of `bytes` was sent (average RTCP size).
  void on_sent(std::size_t bytes) noexcept { on_compound(bytes); }
  /// A report round ended at `now`: the next interval is no longer the initial one, and the
  /// bandwidth window restarts.
  void on_reported(mono_ns_t now) noexcept;
  /// Average RTCP compound size, bytes with UDP/IPv4 headers (§6.3.3).
  [[nodiscard]] double avg_rtcp_size() const noexcept { return avg_rtcp_size_; }

 private:
  std::uint64_t rng_;
  std::uint32_t reporter_ssrc_;
  std::string cname_;
  std::size_t max_held_;
  std::unordered_map<std::uint64_t, HeldSenderReport> held_;
  SessionBandwidthMeter session_bw_;
  double avg_rtcp_size_ = 100;
  bool initial_ = true;
};

}  // namespace rtpnode
