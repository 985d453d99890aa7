// RFC 3550 A.3 reception statistics of one RTP stream: packets expected (from the extended
// sequence numbers) and received, cumulative and interval loss, and the receiver report block
// (§6.4.1). Sequence numbers are extended (unwrapped) by the caller. A sender restart (a
// resync) starts a new run: the expected count of the finished run is kept.
//
// Received counts unique packets; RFC 3550 A.3 counts duplicates as received in reports, so
// report blocks take the duplicate count separately (their cumulative loss may go negative,
// as the RFC says; lost() here is the true loss, never negative).
//
// Thread: the stream's owner (the loop thread). Pure arithmetic.
#pragma once

#include <cstdint>

#include "rtp/rtcp.hpp"
#include "rtp/units.hpp"

namespace rtpnode {

class ReceiveStats {
 public:
  /// True once a sequence number was seen (a report may be sent about the stream).
  [[nodiscard]] bool started() const noexcept { return started_; }
  /// The first packet of the stream has extended sequence number `seq`.
  void start(ext_seq_t seq) noexcept;
  /// The sender restarted at `seq` (a resync): the run so far is folded into the expected count.
  void restart(ext_seq_t seq) noexcept;
  /// A unique packet (not a duplicate) with extended `seq` arrived. Returns true when a higher
  /// sequence number had arrived before it (reordered).
  bool on_packet(ext_seq_t seq) noexcept;

  /// Packets expected so far: the span of sequence numbers of every run.
  [[nodiscard]] std::int64_t expected() const noexcept {
    return expected_prior_ + (highest_ - base_ + 1);
  }
  /// Unique packets received.
  [[nodiscard]] std::uint64_t received() const noexcept { return received_; }
  /// expected - received, at least 0.
  [[nodiscard]] std::int64_t lost() const noexcept;
  /// The extended highest sequence number received.
  [[nodiscard]] ext_seq_t highest() const noexcept { return highest_; }

  /// The report block about `ssrc` for a report sent now (RFC 3550 §6.4.1, A.3): fraction lost
  /// since the previous call (x 256; 0 when duplicates outnumber losses), cumulative lost
  /// (duplicates counted as received; clamped to 24-bit signed), the extended highest sequence
  /// number, `jitter_ticks` as given. reporter, lsr and dlsr are left 0 for the RTCP session.
  /// Advances the interval (expected_prior, received_prior of A.3).
  [[nodiscard]] RtcpReportBlock take_report_block(std::uint32_t ssrc, std::uint64_t duplicates,
                                                  std::uint32_t jitter_ticks) noexcept;

 private:
  bool started_ = false;
  ext_seq_t base_ = 0;
  ext_seq_t highest_ = 0;
  std::int64_t expected_prior_ = 0;  ///< expected packets of the runs before the last restart
  std::uint64_t received_ = 0;
  std::int64_t rr_expected_prior_ = 0;   ///< A.3 expected_prior at the last report
  std::uint64_t rr_received_prior_ = 0;  ///< A.3 received_prior at the last report
};

}  // namespace rtpnode
