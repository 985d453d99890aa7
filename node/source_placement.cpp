// Source's side of the NTP timeline (issue #4; its precision is issue #20): the policy itself is
// TimelinePlacement (node/sync_timeline.hpp); this file gives it the source's numbers -- where a
// packet was captured (SenderClock), where it will play (the ring and the resampler's landing
// point), how early it may play (the clock and the render lead) -- and carries out its decision
// on the rings. Also the SR intake and the user's offset.
#include <cmath>
#include <cstdlib>

#include "node/source.hpp"

namespace rtpnode {

bool Source::define_timeline(SyncTimeline& tl) const {
  if (!sender_clock_.has_mapping() || !have_last_decode_) return false;
  tl.define(sender_clock_.ntp_of(last_decoded_ts_),
            last_decoded_position_ - static_cast<double>(p_.offset_frames));
  return true;
}

double Source::frames_per_ns(const DeviceClock& clock) const noexcept {
  return clock.rate() * (1.0 + clock.skew()) * 1e-9;
}

bool Source::on_timeline() const noexcept {
  return p_.timeline && p_.timeline->on() && sender_clock_.has_mapping();
}

void Source::on_sender_report(std::int64_t ntp_ns, rtp_ts_t rtp_ts) {
  ++stats_.sender_reports;
  if (!p_.timeline || p_.media_clock) return;  // RFC 7273: the SDP's media clock rules
  if (!sender_clock_.on_sender_report(ntp_ns, ts_unwrap_.peek(rtp_ts)))
    ++stats_.sender_reports_ignored;
}

frames_t Source::anchor_frame(ext_ts_t ts, mono_ns_t arrival, const DeviceClock& clock) {
  const mono_ns_t delay = playout_.target_ns(jb_.ptime_ticks());
  const frames_t by_arrival = clock.frame_at(arrival + delay) + p_.lead_frames;
  // The node turns the timeline on once two sources have SRs (SourceTable::update_timeline).
  if (!on_timeline()) return by_arrival + p_.offset_frames;
  // This source must keep at least half its delay; otherwise every synchronised source moves
  // later by what it lacks (they re-place themselves at their next packet).
  const frames_t earliest = clock.frame_at(arrival + delay / 2) + p_.lead_frames;
  return placement_.anchor(*p_.timeline, sender_clock_.ntp_of(ts), frames_per_ns(clock),
                           p_.offset_frames, earliest, by_arrival + p_.offset_frames);
}

mono_ns_t Source::check_placement(ext_ts_t ts, const DeviceClock& clock, mono_ns_t now,
                                  mono_ns_t delay_ns) {
  const double actual_position =
      static_cast<double>(rings_->current().start_frame) + next_ring_position();
  const auto actual = static_cast<frames_t>(std::llround(actual_position));
  if (on_timeline()) pending_shift_ = 0;  // its placement carries offsets and jumps
  if (pending_shift_ != 0) {
    // An offset change or a device jump of an unsynchronised source: play from actual + shift.
    const frames_t want = actual + pending_shift_;
    pending_shift_ = 0;
    const frames_t earliest = clock.frame_at(now) + p_.lead_frames * 3 / 4;
    restart_stream(std::max(want, earliest),
                   std::min(std::max(want, earliest), actual) - p_.ramp_frames,
                   clock.frame_at(now));
    return 0;
  }
  last_decoded_ts_ = ts;
  last_decoded_position_ = actual_position;
  have_last_decode_ = true;
  if (!on_timeline()) {
    placement_.unplace();  // alone on the timeline (or none): its own target delay rules
    return 0;
  }
  const double fpns = frames_per_ns(clock);
  // Not before the ring can take it, nor so early that the source plays with less than its
  // target delay: its next packets would come after their deadlines, expand, and leave it late
  // by the difference for good -- the speed loop cannot pull in audio that is not there (a
  // stream that started at the delay its first packets justify, Params::trim_start, has little
  // to spare). The timeline then moves later for every source instead (TimelinePlacement).
  const frames_t by_delay =
      actual + static_cast<frames_t>(std::ceil(
                   static_cast<double>(playout_.target_ns(jb_.ptime_ticks()) - delay_ns) * fpns));
  const frames_t earliest = std::max(clock.frame_at(now) + p_.lead_frames * 3 / 4, by_delay);
  const frames_t margin = static_cast<frames_t>(dev_rate_ / 500);  // 2 ms
  const TimelinePlacement::Decision d =
      placement_.check(*p_.timeline, sender_clock_.ntp_of(ts), fpns, p_.offset_frames,
                       actual_position, earliest, margin, now);
  using Kind = TimelinePlacement::Decision::Kind;
  switch (d.kind) {
    case Kind::hold:
      return static_cast<mono_ns_t>(d.error_frames / fpns);
    case Kind::place:
      // This packet's first frame plays at d.place_at; the old ring fades out before it.
      restart_stream(d.place_at, std::min(d.place_at, actual) - p_.ramp_frames,
                     clock.frame_at(now));
      return 0;
    case Kind::deferred:
    case Kind::unsynced:
      break;
  }
  return 0;
}

void Source::on_device_jump(frames_t behind, const DeviceClock& clock, mono_ns_t now) {
  placement_.unplace();
  if (behind > dev_rate_ * kFlushAfterJumpMs / 1000 && !leaving_) {
    // A device lost and reopened, or stalled for long: what waits in the jitter buffer and the
    // ring is stale by the outage. Drop it; the next packet anchors the source at its delay
    // (and on the timeline, which SourceTable moved first).
    pending_shift_ = 0;
    flush(clock, now, true);
    return;
  }
  if (!on_timeline()) pending_shift_ -= behind;
}

void Source::set_offset(frames_t offset_frames) {
  pending_shift_ += offset_frames - p_.offset_frames;
  p_.offset_frames = offset_frames;
  // A longer offset holds more audio, compressed, in the jitter buffer (issue #16: its cap
  // was fixed by the offset at creation, so raising the offset made packets overflow).
  jb_.set_max_stored_bytes(stored_bytes_cap(p_));
  placement_.unplace();  // synchronised: placed again at the next packet
}

}  // namespace rtpnode
