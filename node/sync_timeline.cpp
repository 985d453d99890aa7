#include "node/sync_timeline.hpp"

#include <cmath>
#include <cstdlib>

namespace rtpnode {

void SyncTimeline::define(std::int64_t ntp_ns, double frame) noexcept {
  on_ = true;
  ntp0_ns_ = ntp_ns;
  frame0_ = frame;
  ++generation_;
}

void SyncTimeline::follow(std::int64_t ntp_ns, double frames_per_ns) noexcept {
  if (std::llabs(ntp_ns - ntp0_ns_) <= kRebaseAfterNs) return;
  frame0_ = frame_of(ntp_ns, frames_per_ns);
  ntp0_ns_ = ntp_ns;
}

void SyncTimeline::delay_by(double frames) noexcept {
  frame0_ += frames;
  ++generation_;
}

void SyncTimeline::on_device_jump(frames_t behind) noexcept {
  frame0_ -= static_cast<double>(behind);
  ++generation_;
}

double SyncTimeline::set_wall_clock(std::int64_t dac_ntp_ns, double dac_frame,
                                    std::int64_t playout_delay_ns, double frames_per_ns,
                                    double step_frames) noexcept {
  const std::int64_t ntp0 = dac_ntp_ns - playout_delay_ns;  // captured then, plays at dac_frame
  if (!on_) {
    define(ntp0, dac_frame);
    return 0;
  }
  const double move = dac_frame - frame_of(ntp0, frames_per_ns);
  ntp0_ns_ = ntp0;
  frame0_ = dac_frame;
  if (std::abs(move) > step_frames) ++generation_;
  return move;
}

void TimelinePlacement::seat(const SyncTimeline& tl) noexcept {
  placed_ = true;
  generation_ = tl.generation();
  error_frames_ = 0;
}

frames_t TimelinePlacement::anchor(SyncTimeline& tl, std::int64_t ntp_ns, double frames_per_ns,
                                   frames_t offset, frames_t earliest,
                                   frames_t lacking_place) noexcept {
  frames_t place = std::llround(tl.frame_of(ntp_ns, frames_per_ns)) + offset;
  if (place < earliest && tl.absolute()) {
    ++short_of_delay_;
    place = earliest;
  } else if (place < earliest) {
    tl.delay_by(static_cast<double>(lacking_place - place));
    place = lacking_place;
  }
  seat(tl);
  return place;
}

TimelinePlacement::Decision TimelinePlacement::check(SyncTimeline& tl, std::int64_t ntp_ns,
                                                     double frames_per_ns, frames_t offset,
                                                     double actual, frames_t earliest,
                                                     frames_t margin, mono_ns_t now) noexcept {
  tl.follow(ntp_ns, frames_per_ns);
  double want = tl.frame_of(ntp_ns, frames_per_ns) + static_cast<double>(offset);
  if (tl.absolute() && want < static_cast<double>(earliest)) {
    // Its place has passed: play as early as it can; the timeline stays where it is.
    ++short_of_delay_;
    want = static_cast<double>(earliest + margin);
  }
  const double error = actual - want;
  const double limit = kReplaceBeyondS * 1e9 * frames_per_ns;
  Decision d;
  if (placed_ && generation_ == tl.generation() && std::abs(error) < limit) {
    error_frames_ = error;
    d.kind = Decision::Kind::hold;
    d.error_frames = error;
    return d;
  }
  if (!placed_ && std::abs(error) <= kSettledFrames) {
    // Already where it belongs (the source that defined the timeline).
    seat(tl);
    error_frames_ = error;
    d.kind = Decision::Kind::hold;
    d.error_frames = error;
    return d;
  }
  if (placed_ && replaced_once_ && now - last_replace_ns_ < kMinReplaceInterval.count()) {
    ++deferred_;
    d.kind = Decision::Kind::deferred;
    return d;
  }
  replaced_once_ = true;
  last_replace_ns_ = now;
  frames_t place = std::llround(want);
  if (place < earliest) {
    const frames_t lack = earliest - place + margin;
    tl.delay_by(static_cast<double>(lack));
    place += lack;
  }
  seat(tl);
  d.kind = Decision::Kind::place;
  d.place_at = place;
  return d;
}

}  // namespace rtpnode
