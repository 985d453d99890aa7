// A source's rings in the mixer (issue #13's split of Source; the lifetime rules are issue #16's,
// node/mixer.hpp rules 3-5): the current ring, the rings still fading out after re-placements
// (at most kMaxStreams in all: the oldest is cut short beyond that), the user's gain, mute and
// route applied to the current ring, a refused ring offered again, and the playout counters of
// the rings already freed. A ring is freed only once the mixer can no longer touch it
// (Mixer::releasable).
//
// Thread: the source's owner (the loop thread).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "node/mixer.hpp"

namespace rtpnode {

class SourceRings {
 public:
  /// Rings one source may have in the mixer at once: the current one and those still fading out.
  static constexpr std::size_t kMaxStreams = 3;

  struct Settings {
    std::uint32_t id = 0;
    int channels = 1;             ///< interleaved channels of the rings
    std::size_t ring_frames = 0;  ///< capacity of each ring, frames
    /// The mixer the rings go to; null: none (unit tests drain the ring themselves).
    Mixer* mixer = nullptr;
    int device_channels = 2;
    double gain_db = 0;
    std::optional<std::vector<int>> route;  ///< 0-based device channels; unset = standard
  };
  /// Creates the first ring, frame 0 playing at device frame `start_frame`, and adds it.
  SourceRings(Settings s, frames_t start_frame);

  [[nodiscard]] PlayoutStream& current() noexcept { return *current_; }
  [[nodiscard]] const PlayoutStream& current() const noexcept { return *current_; }
  /// Replaces the current ring by a new one whose frame 0 plays at `start_frame`; the old one
  /// fades out from `old_leave_at` -- at once when it has not started playing at `now_frame`
  /// (the device frame playing now), so a ring placed far ahead never lingers.
  void restart(frames_t start_frame, frames_t old_leave_at, frames_t now_frame);
  /// Frees the rings the mixer released; when the source is not `leaving` and the mixer refused
  /// the current ring (every slot taken), offers it again.
  void collect(bool leaving);
  /// The current ring ends at device frame `end` (0: at once): the mixer fades it out there.
  void leave(frames_t end);
  /// True once the mixer released every ring (the source may be freed).
  [[nodiscard]] bool drained() const noexcept;

  // Control, applied at device frame `at` (ramped by the mixer).
  void set_gain_db(double db, frames_t at);
  void set_muted(bool muted, frames_t at);
  /// False while the previous route change is still under way (nothing changes; retry).
  bool set_route(std::optional<std::vector<int>> channels, frames_t at);
  [[nodiscard]] double gain_db() const noexcept { return gain_db_; }
  [[nodiscard]] bool muted() const noexcept { return muted_; }
  /// 1-based device channels, "1,2"; "" = the standard route.
  [[nodiscard]] std::string route_text() const;

  /// Playout counters over every ring this source had (freed ones included).
  struct Totals {
    std::uint64_t underruns = 0, underrun_frames = 0, frames_played = 0, frames_skipped = 0;
  };
  [[nodiscard]] Totals totals() const noexcept;
  [[nodiscard]] std::uint64_t placements() const noexcept { return placements_; }
  [[nodiscard]] std::uint64_t placements_forced() const noexcept { return placements_forced_; }
  [[nodiscard]] std::uint64_t mixer_refusals() const noexcept { return mixer_refusals_; }

 private:
  [[nodiscard]] bool released(const PlayoutStream& s) const noexcept;
  [[nodiscard]] Route route() const;
  [[nodiscard]] float linear_gain() const noexcept;

  Settings s_;
  std::unique_ptr<PlayoutStream> current_;
  std::vector<std::unique_ptr<PlayoutStream>> old_;  ///< leaving, not yet released
  double gain_db_ = 0;
  bool muted_ = false;
  Totals freed_;
  std::uint64_t placements_ = 0, placements_forced_ = 0, mixer_refusals_ = 0;
};

}  // namespace rtpnode
