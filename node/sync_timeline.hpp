// The node's NTP timeline and the placement policy of the sources on it (issue #4; its
// precision is issue #20; DESIGN.md "Timeline").
//
// SyncTimeline: one mapping from the senders' NTP clock to device frames, shared by every source
// whose sender sends RTCP Sender Reports. A source's RTP timestamp maps to NTP through its SRs
// (RFC 3550 §6.4.1, SenderClock); NTP maps to the device frame at which that instant plays here:
//   frame(ntp) = frame0 + (ntp - ntp0) * device frames per ns.
// Sources from senders that share an NTP clock therefore play equal capture instants at the same
// device frame, whatever their clock rates. The timeline is defined by the first source that
// plays with an SR once two have one (define(): where that source plays now, so it does not
// move), and moves only later, never earlier: when a source cannot make its place (its packets
// arrive too late for it), every placement moves later by what it lacks (delay_by(); the
// generation changes and every source places itself again).
//
// TimelinePlacement: one source's seat on the timeline, the whole policy of how it gets there
// and stays there. At its first packet it is anchored at its place (anchor()). At each decoded
// packet (check()) it compares where the packet will play (exact to a fraction of a frame: the
// resampler's landing point, node/drift_resampler.hpp) with its place:
//  - hold: within kReplaceBeyondS of it: the error feeds the speed loop (PlayoutController::
//    update_speed_on_timeline), which closes it without a jump;
//  - place: not yet placed, further off, or the timeline moved (generation): the source's ring
//    restarts at exactly its place (a crossfade), at most once per kMinReplaceInterval for a
//    placed source (a flood of forged SRs cannot make it churn rings, issue #16);
//  - unsynced: no timeline, or no SR for this source: it plays at its own target delay.
//
// Absolute playout (issue #19, --sync absolute --playout-delay D): the timeline is this node's
// wall clock instead of its first source. An instant captured at sender NTP time T plays at the
// DAC at wall-clock time T + D (+ the source's offset), so every node whose wall clock agrees
// with the senders' plays it at the same instant. SourceTable::follow_wall_clock() feeds the
// mapping (set_wall_clock) from the device clock and the wall clock; the timeline never moves to
// make room for a late source (delay_by is not used): a source whose packets arrive too late for
// D plays as early as it can and counts it (TimelinePlacement::short_of_delay()).
//
// Thread: loop only. Pure arithmetic: unit tests drive it with plain numbers.
#pragma once

#include <chrono>
#include <cstdint>

#include "rtp/units.hpp"

namespace rtpnode {

class SyncTimeline {
 public:
  /// True while two or more sources have SRs and one defined the mapping.
  [[nodiscard]] bool on() const noexcept { return on_; }
  /// Changes whenever every placement moved (delay_by) or the timeline was defined anew.
  [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
  /// Turns the timeline on: NTP instant `ntp_ns` (ns since 1900) plays at device frame `frame`.
  void define(std::int64_t ntp_ns, double frame) noexcept;
  /// Fewer than two sources with SRs: off (sources play at their own delays).
  void turn_off() noexcept { on_ = false; }
  /// Device frame (fractional) at which NTP instant `ntp_ns` plays; `frames_per_ns` is the
  /// device's measured rate (nominal * (1 + skew) / 1e9). Valid when on().
  [[nodiscard]] double frame_of(std::int64_t ntp_ns, double frames_per_ns) const noexcept {
    return frame0_ + static_cast<double>(ntp_ns - ntp0_ns_) * frames_per_ns;
  }
  /// Keeps the origin within kRebaseAfterNs of `ntp_ns` (the present), keeping the mapping there:
  /// a later rate update then bends the mapping only from here on instead of swinging it around
  /// an old origin.
  void follow(std::int64_t ntp_ns, double frames_per_ns) noexcept;
  /// Every placement moves `frames` (> 0) later.
  void delay_by(double frames) noexcept;
  /// The device jumped: its frames now play `behind` frames later in time (> 0, a stall) or
  /// earlier (< 0). Every placement moves by -behind, so that each capture instant plays at the
  /// same wall-clock delay as before (issue #15: after a stall, the delay comes back at once
  /// instead of staying raised by the stall). The only move to earlier frames.
  void on_device_jump(frames_t behind) noexcept;

  /// Absolute playout (--sync absolute): the mapping comes from set_wall_clock() only.
  void set_absolute(bool absolute) noexcept { absolute_ = absolute; }
  [[nodiscard]] bool absolute() const noexcept { return absolute_; }
  /// Absolute playout: device frame `dac_frame` (fractional) reaches the DAC at wall-clock
  /// instant `dac_ntp_ns` (ns since 1900), so an instant captured at T plays at frame
  ///   dac_frame + (T + playout_delay_ns - dac_ntp_ns) * frames_per_ns.
  /// Off: turns the timeline on (a new generation). On: a mapping that moved by more than
  /// `step_frames` (e.g. 1 ms: the wall clock was stepped, or the device clock re-anchored) is a
  /// step and makes a new generation (every source places itself again, with a crossfade); a
  /// smaller move (the device clock's fit refining) is left to the sources' speed loops.
  /// Returns the move, frames (> 0: every instant now plays later); 0 when turning on.
  double set_wall_clock(std::int64_t dac_ntp_ns, double dac_frame, std::int64_t playout_delay_ns,
                        double frames_per_ns, double step_frames) noexcept;

  static constexpr std::int64_t kRebaseAfterNs = 10'000'000'000;

 private:
  bool on_ = false;
  std::int64_t ntp0_ns_ = 0;  ///< an NTP instant, ns since 1900-01-01 (RFC 5905 era 0)
  double frame0_ = 0;         ///< the device frame at which ntp0_ns_ plays
  std::uint64_t generation_ = 0;
  bool absolute_ = false;
};

class TimelinePlacement {
 public:
  /// Beyond this error a placed source is placed again instead of trimmed.
  static constexpr double kReplaceBeyondS = 0.020;
  /// A placed source re-places at most this often.
  static constexpr std::chrono::nanoseconds kMinReplaceInterval{500'000'000};
  /// Within this many frames a source that is not placed yet counts as placed where it plays.
  static constexpr double kSettledFrames = 1.0;

  /// Where the source is and what it should do (check()).
  struct Decision {
    enum class Kind {
      unsynced,  ///< no timeline or no SR: play at the source's own target delay
      hold,      ///< on its place within kReplaceBeyondS: error_frames feeds the speed loop
      place,     ///< restart the ring at `place_at`
      deferred,  ///< should re-place, but re-placed less than kMinReplaceInterval ago
    };
    Kind kind = Kind::unsynced;
    double error_frames = 0;  ///< actual - place (> 0: plays late); 0 unless hold
    frames_t place_at = 0;    ///< place: the device frame of the packet's first frame
  };

  /// The first packet of a stream, captured at `ntp_ns`: the device frame its first frame plays
  /// at -- its place plus `offset` (the user's, device frames) -- or, when that is before
  /// `earliest` (the source would lack delay), `lacking_place` after moving the whole timeline
  /// later to it. An absolute timeline does not move: the source then plays at `earliest` and
  /// counts it (short_of_delay). `tl` must be on().
  frames_t anchor(SyncTimeline& tl, std::int64_t ntp_ns, double frames_per_ns, frames_t offset,
                  frames_t earliest, frames_t lacking_place) noexcept;
  /// A decoded packet captured at `ntp_ns` will play at device frame `actual` (fractional). At
  /// loop time `now`; a re-placement goes no earlier than `earliest` (the timeline moves later by
  /// what is missing plus `margin`). On an absolute timeline, which does not move, a packet
  /// whose place is before `earliest` counts as short of delay (short_of_delay) and its place is
  /// `earliest + margin`. `tl` must be on().
  Decision check(SyncTimeline& tl, std::int64_t ntp_ns, double frames_per_ns, frames_t offset,
                 double actual, frames_t earliest, frames_t margin, mono_ns_t now) noexcept;
  /// The source is off the timeline (no timeline, no SR, or its offset changed): it places
  /// itself at its next check().
  void unplace() noexcept { placed_ = false; }

  [[nodiscard]] bool placed() const noexcept { return placed_; }
  /// The last error (frames, > 0: late) while placed; 0 right after a placement.
  [[nodiscard]] double error_frames() const noexcept { return error_frames_; }
  /// Re-placements postponed by kMinReplaceInterval.
  [[nodiscard]] std::uint64_t deferred() const noexcept { return deferred_; }
  /// Absolute timeline: packets (and first packets) whose place had already passed when they
  /// were decoded -- the playout delay is shorter than this source's path. They play late.
  [[nodiscard]] std::uint64_t short_of_delay() const noexcept { return short_of_delay_; }

 private:
  void seat(const SyncTimeline& tl) noexcept;

  bool placed_ = false;
  std::uint64_t generation_ = 0;  ///< the timeline's generation when placed
  bool replaced_once_ = false;
  mono_ns_t last_replace_ns_ = 0;
  double error_frames_ = 0;
  std::uint64_t deferred_ = 0;
  std::uint64_t short_of_delay_ = 0;
};

/// RFC 3550 §4: 64-bit NTP timestamp (32.32 fixed point, seconds since 1900) to ns since 1900.
constexpr std::int64_t ntp64_to_ns(std::uint64_t ntp) noexcept {
  return static_cast<std::int64_t>(ntp >> 32) * 1'000'000'000 +
         static_cast<std::int64_t>(((ntp & 0xffffffffu) * 1'000'000'000ull) >> 32);
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970), RFC 868.
constexpr std::int64_t kNtpUnixOffsetS = 2'208'988'800;

}  // namespace rtpnode
