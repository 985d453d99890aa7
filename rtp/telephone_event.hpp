// RFC 4733 telephone-events (DTMF digits and other named events) received over RTP: each event
// is reported once, with its digit, start and duration, instead of being played.
//
// RFC 4733 §2.5.1: the packets of one event share its RTP timestamp (the event's start); the
// duration field grows as it goes on; the last packet sets the E bit and is sent up to three
// times. An event is reported at its first E-bit packet, or -- when every end packet was lost --
// when a packet of a new event (another timestamp) arrives, or at flush(). A retransmitted end
// or a late packet of a reported event is ignored. An event longer than the 16-bit duration
// field holds (65535 ticks, 8.2 s at 8 kHz) is sent as segments (§2.5.1.3): each segment a new
// RTP timestamp where the previous one's duration ends, without the E bit until the event
// ends. A report of the same event starting exactly there continues the event: it is reported
// once, from its first segment's timestamp, with the segments' durations summed. (A segment
// whose last packets were all lost ends short of the next one's start: the event is then
// reported per segment.) Only the first event block of a packet is read (no RFC 2198
// redundancy).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>

#include "rtp/units.hpp"

namespace rtpnode {

/// One event block (RFC 4733 §2.3): event code, end bit, volume (0..63, -dBm0), duration
/// (RTP timestamp ticks).
struct TelephoneEventBlock {
  std::uint8_t event = 0;
  bool end = false;
  std::uint8_t volume = 0;
  std::uint16_t duration = 0;
};
/// The first block of a telephone-event payload; none when shorter than 4 bytes. Pure.
std::optional<TelephoneEventBlock> parse_telephone_event(std::span<const std::uint8_t> payload);
/// The DTMF character of event codes 0..16 (RFC 4733 §3.2: 0-9, * = 10, # = 11, A-D = 12-15,
/// flash = 16 as '!'), or '?' for other events. Pure.
char dtmf_char(std::uint8_t event) noexcept;

/// Follows one SSRC's telephone-events. Thread: one at a time (the loop).
class TelephoneEventReceiver {
 public:
  struct Event {
    std::uint8_t event = 0;
    char digit = '?';
    std::uint32_t rtp_timestamp = 0;   ///< the event's start, RTP ticks
    std::uint32_t duration_ticks = 0;  ///< as the last packet seen said
    std::uint8_t volume = 0;           ///< -dBm0
    mono_ns_t first_arrival = 0;       ///< arrival of the event's first packet seen
    bool end_seen = false;             ///< false: reported without its E-bit packet (lost)
  };
  /// What one packet completed: none, one event, or two (the previous event whose end packets
  /// were lost, then a new one seen only by its end).
  struct Completed {
    std::array<Event, 2> events{};
    int count = 0;
  };
  /// One packet (its RTP timestamp, payload and arrival).
  Completed on_packet(std::uint32_t rtp_timestamp, std::span<const std::uint8_t> payload,
                      mono_ns_t arrival);
  /// The event in progress, reported as it stands (the stream ended); then nothing is pending.
  std::optional<Event> flush();

 private:
  bool active_ = false;    ///< an event is in progress (not yet reported)
  bool reported_ = false;  ///< the event of `segment_ts_` was reported
  Event current_;
  std::uint32_t segment_ts_ = 0;           ///< RTP timestamp of the segment in progress
  std::uint32_t previous_segment_ts_ = 0;  ///< the segment before it (while segment_base_ > 0)
  std::uint32_t segment_base_ = 0;         ///< ticks of the event before the segment in progress
  std::uint16_t segment_duration_ = 0;     ///< the segment's duration, as its last packet said
};

}  // namespace rtpnode
