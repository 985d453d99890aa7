// RTCP (RFC 3550 §6): validation of compound packets (A.2) and the parts rtpnode uses — Sender
// Reports (NTP <-> RTP timestamp mapping, §6.4.1), Receiver Report blocks (§6.4.2), SDES CNAME
// (§6.5) and BYE (§6.6). The structure is validated here first; the fields are then read with
// oRTP's RTCP accessors (rtcp_is_SR, rtcp_SR_get_sender_info, rtcp_BYE_get_ssrc, ...).
// Receiver Reports are built here too (rtcp_build_receiver_report).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rtpnode {

/// RFC 3550 §6.4.1 sender info.
struct RtcpSenderReport {
  std::uint32_t ssrc = 0;
  std::uint64_t ntp = 0;      ///< 32.32 fixed point seconds since 1900
  std::uint32_t rtp_ts = 0;   ///< RTP timestamp of the same instant
  std::uint32_t packets = 0;  ///< sender's packet count
  std::uint32_t octets = 0;   ///< sender's payload octet count
};

/// RFC 3550 §6.4.1 report block (what a receiver says about one source).
struct RtcpReportBlock {
  std::uint32_t reporter = 0;        ///< SSRC of the SR/RR sender
  std::uint32_t ssrc = 0;            ///< the source reported on
  std::uint8_t fraction_lost = 0;    ///< lost / expected since the last report, x 256
  std::int32_t cumulative_lost = 0;  ///< 24-bit signed
  std::uint32_t highest_seq = 0;     ///< extended highest sequence number received
  std::uint32_t jitter = 0;          ///< interarrival jitter, timestamp units
  std::uint32_t lsr = 0;             ///< middle 32 bits of the last SR's NTP timestamp
  std::uint32_t dlsr = 0;            ///< delay since that SR, 1/65536 s
};

/// Everything rtpnode reads from one compound RTCP datagram.
struct RtcpCompound {
  std::vector<RtcpSenderReport> sender_reports;
  std::vector<RtcpReportBlock> report_blocks;
  std::vector<std::pair<std::uint32_t, std::string>> cnames;  ///< (SSRC, CNAME)
  std::vector<std::uint32_t> byes;                            ///< SSRCs leaving
  int packets = 0;                                            ///< RTCP packets in the compound
};

enum class RtcpParseStatus : std::uint8_t {
  ok,
  too_short,    ///< under 8 bytes, or a packet's length runs past the datagram
  bad_version,  ///< a packet's version is not 2
  bad_length,   ///< lengths do not add up to the datagram, or a packet is too short for its count
  bad_padding,  ///< padding on a packet other than the last, or longer than the packet
};
[[nodiscard]] std::string_view to_string(RtcpParseStatus s) noexcept;

/// Thread: any (allocates). Validates `data` as a compound RTCP packet (RFC 3550 A.2, except
/// that the first packet may be any type: some senders lead with BYE or SDES) and extracts SR,
/// report blocks, CNAMEs and BYE. Unknown packet types (APP, XR, feedback) are skipped. On any
/// error nothing is extracted.
RtcpParseStatus rtcp_parse(std::span<const std::uint8_t> data, RtcpCompound& out);

/// Thread: any (allocates). An RTCP compound of one Receiver Report (RFC 3550 §6.4.2) from
/// `reporter` with `blocks` (at most 31) followed by an SDES packet with its CNAME (§6.5.1;
/// required in every compound, §6.1).
std::vector<std::uint8_t> rtcp_build_receiver_report(std::uint32_t reporter,
                                                     const std::vector<RtcpReportBlock>& blocks,
                                                     std::string_view cname);

/// Thread: any (allocates). An RTCP compound: Sender Report `sr` (no report blocks, §6.4.1),
/// SDES CNAME, and, when `bye` is set, a BYE for sr.ssrc (§6.6).
std::vector<std::uint8_t> rtcp_build_sender_report(const RtcpSenderReport& sr,
                                                   std::string_view cname, bool bye = false);

/// Inputs of the RTCP transmission interval (RFC 3550 §6.3.1, A.7).
struct RtcpIntervalInputs {
  double members = 2;          ///< session members, this participant included
  double senders = 1;          ///< members that sent RTP recently
  double rtcp_bandwidth = 0;   ///< bytes/s for RTCP: 5 % of the session bandwidth (§6.2)
  bool we_sent = false;        ///< this participant sent RTP since the second-last report
  double avg_rtcp_size = 100;  ///< bytes, UDP and IP headers included (§6.3.3 average)
  bool initial = false;        ///< no report sent yet: half the minimum
  double min_interval_s = 5;   ///< Tmin (§6.2: 5 s; smaller allowed for large sessions)
};

/// Thread: any. The randomised RTCP interval in seconds (RFC 3550 A.7 rtcp_interval()):
/// receivers share 75 % of the RTCP bandwidth when senders are at most a quarter of the members,
/// the deterministic interval is at least Tmin (half at start), then multiplied by
/// `uniform` + 0.5 (`uniform` in [0, 1): the caller's random draw) and divided by
/// e − 3/2 = 1.21828 (the timer-reconsideration compensation). Zero bandwidth gives Tmin.
[[nodiscard]] double rtcp_interval(const RtcpIntervalInputs& in, double uniform) noexcept;

/// Measures the session bandwidth that RFC 3550 §6.2 bases the RTCP interval on, from the
/// datagrams received, in bytes/s with UDP/IP headers. A window starts at its first datagram
/// (not at the previous report), so a stream that starts mid-window is not diluted by the idle
/// time before it: 50 packets/s of 200 bytes measure 10 kB/s from their second packet on, rather
/// than a few hundred bytes/s that would stretch the next interval to several seconds.
/// Thread: one (the loop thread); not thread-safe.
class SessionBandwidthMeter {
 public:
  /// A datagram of `bytes` (headers included) arrived at `now` (monotonic ns).
  void on_datagram(std::size_t bytes, std::int64_t now) noexcept;
  /// Bytes/s over the current window [first datagram, now], excluding the first datagram (the
  /// window's fence post); the previous window's figure while the current one holds less than
  /// 200 ms; 0 when nothing has been measured yet.
  [[nodiscard]] double bytes_per_second(std::int64_t now) const noexcept;
  /// Starts a new window (after each report); the measured figure is kept as the fallback.
  void restart(std::int64_t now) noexcept;

 private:
  [[nodiscard]] double window_rate(std::int64_t now) const noexcept;
  std::int64_t first_ = -1;  ///< arrival of the window's first datagram, -1 if none
  double bytes_ = 0;         ///< bytes after the first datagram
  double previous_ = 0;      ///< the last complete window's rate
};

}  // namespace rtpnode
