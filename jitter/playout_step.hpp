// The playout loop's decision, in one place (issue #13): rtpnode's Source and the trace harness
// (tools/trace_sim.cpp, both its simulations) call these, so the harness measures the code that
// ships. The deadline rule (jitter/playout.hpp): the audio at the jitter buffer's cursor is
// needed `ahead_ns` from now (the caller's output model says how much audio it has queued past
// the point where new audio is needed); the playout delay at that deadline decides whether a
// missing packet may still be waited for (expand) or is concealed.
//
// Thread: the owner of the jitter buffer and controller. No allocation.
#pragma once

#include "jitter/jitter_buffer.hpp"
#include "jitter/playout.hpp"

namespace rtpnode {

/// One step: what to do, and the playout delay the cursor's audio plays with.
struct PlayoutStep {
  JitterBuffer::Action action;
  mono_ns_t delay_ns = 0;  ///< PlayoutController::delay_ns at the deadline now + ahead_ns
};

/// The jitter buffer's horizon for a deadline `ahead_ns` from now (JitterBuffer::insert and
/// next take it): packets with RTP time up to it are due.
[[nodiscard]] inline ext_ts_t playout_horizon(const JitterBuffer& jb, const PlayoutController& pc,
                                              mono_ns_t ahead_ns) noexcept {
  return pc.horizon_ts(jb.cursor_ts(), ahead_ns);
}

/// Decides the next step at monotonic time `now` with `ahead_ns` of audio queued past the
/// deadline. The caller carries it out and completes it with JitterBuffer::played (or discard),
/// then tells the controller what it did: update_speed after a decode, adjust_gap for a gap,
/// count_expansion for an expansion (jitter/playout.hpp).
[[nodiscard]] inline PlayoutStep next_playout_step(JitterBuffer& jb, const PlayoutController& pc,
                                                   mono_ns_t now, mono_ns_t ahead_ns) {
  PlayoutStep s;
  s.delay_ns = pc.delay_ns(now + ahead_ns, jb.cursor_ts());
  s.action =
      jb.next(playout_horizon(jb, pc, ahead_ns), pc.may_expand(s.delay_ns, jb.ptime_ticks()));
  return s;
}

}  // namespace rtpnode
