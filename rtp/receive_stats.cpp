#include "rtp/receive_stats.hpp"

#include <algorithm>

namespace rtpnode {

void ReceiveStats::start(ext_seq_t seq) noexcept {
  base_ = highest_ = seq;
  started_ = true;
}

void ReceiveStats::restart(ext_seq_t seq) noexcept {
  expected_prior_ += highest_ - base_ + 1;
  base_ = highest_ = seq;
}

bool ReceiveStats::on_packet(ext_seq_t seq) noexcept {
  ++received_;
  const bool reordered = seq < highest_;
  highest_ = std::max(highest_, seq);
  return reordered;
}

std::int64_t ReceiveStats::lost() const noexcept {
  return std::max<std::int64_t>(0, expected() - static_cast<std::int64_t>(received_));
}

RtcpReportBlock ReceiveStats::take_report_block(std::uint32_t ssrc, std::uint64_t duplicates,
                                                std::uint32_t jitter_ticks) noexcept {
  RtcpReportBlock b;
  b.ssrc = ssrc;
  const std::int64_t expected_now = expected();
  const std::uint64_t received = received_ + duplicates;
  const std::int64_t expected_interval = expected_now - rr_expected_prior_;
  const std::int64_t received_interval = static_cast<std::int64_t>(received - rr_received_prior_);
  const std::int64_t lost_interval = expected_interval - received_interval;
  rr_expected_prior_ = expected_now;
  rr_received_prior_ = received;
  b.fraction_lost = expected_interval <= 0 || lost_interval <= 0
                        ? 0
                        : static_cast<std::uint8_t>(std::min<std::int64_t>(
                              255, (lost_interval << 8) / expected_interval));
  b.cumulative_lost = static_cast<std::int32_t>(std::clamp<std::int64_t>(
      expected_now - static_cast<std::int64_t>(received), -0x800000, 0x7fffff));
  b.highest_seq = static_cast<std::uint32_t>(highest_);
  b.jitter = jitter_ticks;
  return b;
}

}  // namespace rtpnode
