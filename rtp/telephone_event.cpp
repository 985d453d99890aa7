#include "rtp/telephone_event.hpp"

#include <algorithm>

namespace rtpnode {

std::optional<TelephoneEventBlock> parse_telephone_event(std::span<const std::uint8_t> payload) {
  if (payload.size() < 4) return std::nullopt;
  TelephoneEventBlock b;
  b.event = payload[0];
  b.end = (payload[1] & 0x80) != 0;
  b.volume = payload[1] & 0x3f;
  b.duration = static_cast<std::uint16_t>(payload[2] << 8 | payload[3]);
  return b;
}

char dtmf_char(std::uint8_t event) noexcept {
  if (event <= 9) return static_cast<char>('0' + event);
  switch (event) {
    case 10:
      return '*';
    case 11:
      return '#';
    case 12:
    case 13:
    case 14:
    case 15:
      return static_cast<char>('A' + (event - 12));
    case 16:
      return '!';
    default:
      return '?';
  }
}

TelephoneEventReceiver::Completed TelephoneEventReceiver::on_packet(
    std::uint32_t rtp_timestamp, std::span<const std::uint8_t> payload, mono_ns_t arrival) {
  Completed done;
  const auto b = parse_telephone_event(payload);
  if (!b) return done;
  // A late packet of the segment before the one in progress.
  if (active_ && segment_base_ > 0 && rtp_timestamp == previous_segment_ts_) return done;
  const bool same = (active_ || reported_) && rtp_timestamp == segment_ts_;
  if (!same) {
    // RFC 4733 §2.5.1.3: the event in progress goes on in a new segment.
    const bool next_segment =
        active_ && b->event == current_.event && segment_duration_ > 0 &&
        rtp_timestamp == static_cast<std::uint32_t>(segment_ts_ + segment_duration_);
    if (next_segment) {
      segment_base_ += segment_duration_;
      previous_segment_ts_ = segment_ts_;
    } else {
      if (active_) done.events[done.count++] = current_;  // it lost its end packets
      current_ = Event{};
      current_.event = b->event;
      current_.digit = dtmf_char(b->event);
      current_.rtp_timestamp = rtp_timestamp;
      current_.first_arrival = arrival;
      segment_base_ = 0;
      active_ = true;
      reported_ = false;
    }
    segment_ts_ = rtp_timestamp;
    segment_duration_ = 0;
  }
  if (reported_) return done;  // a retransmitted end, or a late packet of a reported event
  segment_duration_ = std::max(segment_duration_, b->duration);
  current_.duration_ticks = segment_base_ + segment_duration_;
  current_.volume = b->volume;
  if (b->end) {
    current_.end_seen = true;
    active_ = false;
    reported_ = true;
    done.events[done.count++] = current_;
  }
  return done;
}

std::optional<TelephoneEventReceiver::Event> TelephoneEventReceiver::flush() {
  if (!active_) return std::nullopt;
  active_ = false;
  reported_ = true;
  return current_;
}

}  // namespace rtpnode
