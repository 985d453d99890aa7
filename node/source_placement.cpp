// Source's placement on the node's NTP timeline (issue #4; its precision is issue #20): where a
// stream anchored by a packet starts, and how a synchronised source stays on the timeline (the
// speed loop's error, re-placement beyond 20 ms, at most every kMinReplaceInterval), the SR
// intake and the user's offset. Kept apart from the rest of Source (source.cpp) because #20
// reworks exactly this.
#include <cmath>
#include <cstdlib>

#include "node/source.hpp"

namespace rtpnode {

bool Source::define_timeline(SyncTimeline& tl) const {
  if (!sender_clock_.has_mapping() || !have_last_decode_) return false;
  tl.set = true;
  tl.ntp0_ns = sender_clock_.ntp_of(last_decoded_ts_);
  tl.frame0 = static_cast<double>(last_decoded_frame_ - p_.offset_frames);
  return true;
}

double Source::frames_per_ns(const DeviceClock& clock) const noexcept {
  return clock.rate() * (1.0 + clock.skew()) * 1e-9;
}

void Source::on_sender_report(std::int64_t ntp_ns, rtp_ts_t rtp_ts) {
  ++stats_.sender_reports;
  if (!p_.timeline) return;
  if (!sender_clock_.on_sender_report(ntp_ns, ts_unwrap_.peek(rtp_ts)))
    ++stats_.sender_reports_ignored;
}

frames_t Source::anchor_frame(ext_ts_t ts, mono_ns_t arrival, const DeviceClock& clock) {
  const mono_ns_t delay = playout_.target_ns(jb_.ptime_ticks());
  const frames_t by_arrival = clock.frame_at(arrival + delay) + p_.lead_frames;
  SyncTimeline* tl = p_.timeline;
  // The node turns the timeline on once two sources have SRs (Node::update_timeline).
  if (!tl || !sender_clock_.has_mapping() || !tl->set) return by_arrival + p_.offset_frames;
  const double fpns = frames_per_ns(clock);
  frames_t want = std::llround(tl->frame_of(sender_clock_.ntp_of(ts), fpns)) + p_.offset_frames;
  // This source must keep at least half its delay; otherwise every synchronised source moves
  // later by what it lacks (they re-place themselves at their next packet).
  const frames_t earliest = clock.frame_at(arrival + delay / 2) + p_.lead_frames;
  if (want < earliest) {
    const frames_t lack = by_arrival + p_.offset_frames - want;
    tl->frame0 += static_cast<double>(lack);
    ++tl->generation;
    want += lack;
  }
  placed_ = true;
  placed_generation_ = tl->generation;
  sync_error_frames_ = 0;
  return want;
}

mono_ns_t Source::check_placement(ext_ts_t ts, const DeviceClock& clock, mono_ns_t now) {
  SyncTimeline* tl = p_.timeline;
  const double actual_position =
      static_cast<double>(rings_->current().start_frame) + next_ring_position();
  const auto actual = static_cast<frames_t>(std::llround(actual_position));
  if (pending_shift_ != 0 && !(tl && sender_clock_.has_mapping())) {
    // An offset change of an unsynchronised source: play from actual + shift.
    const frames_t want = actual + pending_shift_;
    pending_shift_ = 0;
    const frames_t earliest = clock.frame_at(now) + p_.lead_frames * 3 / 4;
    restart_stream(std::max(want, earliest),
                   std::min(std::max(want, earliest), actual) - p_.ramp_frames,
                   clock.frame_at(now));
    return 0;
  }
  last_decoded_ts_ = ts;
  last_decoded_frame_ = actual;
  have_last_decode_ = true;
  if (!tl || !sender_clock_.has_mapping() || !tl->set) {
    placed_ = false;  // alone on the timeline (or none): its own target delay rules
    return 0;
  }
  const double fpns = frames_per_ns(clock);
  const std::int64_t ntp = sender_clock_.ntp_of(ts);
  // Keep the origin near the present so a changing device rate bends only the future.
  if (std::llabs(ntp - tl->ntp0_ns) > 10'000'000'000ll) tl->rebase(ntp, fpns);
  const double want = tl->frame_of(ntp, fpns) + static_cast<double>(p_.offset_frames);
  sync_error_frames_ = actual_position - want;
  const double limit = static_cast<double>(dev_rate_) * 0.020;  // beyond 20 ms: place again
  if (placed_ && placed_generation_ == tl->generation && std::abs(sync_error_frames_) < limit)
    return static_cast<mono_ns_t>(sync_error_frames_ / fpns);
  if (!placed_ && std::abs(sync_error_frames_) <= 1.0) {
    placed_ = true;
    placed_generation_ = tl->generation;
    return 0;
  }
  // Re-place: this packet's first frame plays at `want`, or the timeline moves later. A placed
  // source does so at most once per kMinReplaceInterval, however its SRs or the timeline move.
  if (placed_ && now - last_replace_ns_ < kMinReplaceInterval.count()) {
    ++stats_.placements_deferred;
    return 0;
  }
  last_replace_ns_ = now;
  frames_t w = std::llround(want);
  const frames_t earliest = clock.frame_at(now) + p_.lead_frames * 3 / 4;
  if (w < earliest) {
    const frames_t lack = earliest - w + static_cast<frames_t>(dev_rate_ / 500);  // + 2 ms
    tl->frame0 += static_cast<double>(lack);
    ++tl->generation;
    w += lack;
  }
  restart_stream(w, std::min(w, actual) - p_.ramp_frames, clock.frame_at(now));
  placed_ = true;
  placed_generation_ = tl->generation;
  sync_error_frames_ = 0;
  return 0;
}

void Source::set_offset(frames_t offset_frames) {
  pending_shift_ += offset_frames - p_.offset_frames;
  p_.offset_frames = offset_frames;
  placed_ = false;  // synchronised: placed again at the next packet
}

}  // namespace rtpnode
