#include "node/event_watcher.hpp"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace rtpnode {

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08" PRIx32, v);
  return buf;
}

nlohmann::json source_id(const SourceStats& st) {
  return {
      {"ssrc", hex32(st.ssrc)}, {"port", st.port}, {"remote", st.remote}, {"payload", st.payload}};
}

namespace {

/// The buffer state at an event.
nlohmann::json buffer_state(const SourceStats& st, double since_last_packet_ms) {
  return {{"queued_ms", st.queued_ms},
          {"target_delay_ms", st.target_delay_ms},
          {"playout_delay_ms", st.playout_delay_ms},
          {"jitter_ms", st.jitter_ms},
          {"ms_since_last_packet", since_last_packet_ms},
          {"packets_lost", st.packets_lost},
          {"packets_late", st.packets_late}};
}

}  // namespace

void EventWatcher::event(const char* name, const nlohmann::json& fields, mono_ns_t now) {
  log_.write(name, started_ns_ ? static_cast<double>(now - started_ns_) * 1e-9 : 0.0, fields);
}

void EventWatcher::watch(const Source& s) {
  if (log_.enabled()) watch_[&s].last = s.stats();
}

void EventWatcher::check(mono_ns_t now, const std::vector<Source*>& sources, std::uint64_t xruns,
                         mono_ns_t max_loop_gap, double lead_ms) {
  if (!log_.enabled()) return;
  const double t = static_cast<double>(now - started_ns_) * 1e-9;
  const bool xrun_now = xruns > watched_xruns_;
  if (xrun_now) event("xrun", {{"xruns", xruns - watched_xruns_}, {"xruns_total", xruns}}, now);
  watched_xruns_ = xruns;
  // A loop late by more than the audio rendered ahead (the render lead, one period + 10 ms)
  // leaves the callback without audio even when every packet arrived in time.
  const double loop_stall_ms = static_cast<double>(max_loop_gap) / 1e6;
  const bool loop_stalled = loop_stall_ms > std::max(lead_ms, 20.0);
  for (Source* s : sources) {
    Watch& w = watch_[s];
    const SourceStats st = s->stats();
    const double since_ms = static_cast<double>(now - s->last_arrival()) / 1e6;
    const bool stalled = since_ms >= 100.0;
    const std::uint64_t lost =
        st.packets_lost > w.last.packets_lost
            ? static_cast<std::uint64_t>(st.packets_lost - w.last.packets_lost)
            : 0;
    const std::uint64_t late = st.packets_late - w.last.packets_late;
    if (st.underruns > w.last.underruns) {
      // Why the mixer found no audio: the device stalled, the stream stopped, packets came too
      // late for the target, or none of these: the loop thread did not render in time.
      const char* cause = xrun_now       ? "device_xrun"
                          : loop_stalled ? "loop_stalled"
                          : stalled      ? "stream_stalled"
                          : late > 0     ? "late_packets"
                                         : "render_late";
      nlohmann::json f = source_id(st);
      f["underruns"] = st.underruns - w.last.underruns;
      f["underrun_frames"] = st.underrun_frames - w.last.underrun_frames;
      f["cause"] = cause;
      if (loop_stalled) f["loop_stall_ms"] = std::round(loop_stall_ms * 10.0) / 10.0;
      f["buffer"] = buffer_state(st, since_ms);
      event("underrun", f, now);
    }
    // Concealment bursts: open while concealment continues from one check to the next, written
    // once when it ends, with what caused it.
    const std::uint64_t concealed = st.frames_concealed - w.last.frames_concealed;
    if (concealed > 0) {
      if (!w.in_concealment) {
        w.in_concealment = true;
        w.burst_start_s = t;
        w.burst_frames = w.burst_lost = w.burst_late = 0;
        w.stalled = w.device_xrun = false;
        w.loop_stall_ms = 0;
      }
      w.burst_frames += concealed;
      w.burst_lost += lost;
      w.burst_late += late;
      w.stalled = w.stalled || stalled;
      w.device_xrun = w.device_xrun || xrun_now;
      if (loop_stalled) w.loop_stall_ms = std::max(w.loop_stall_ms, loop_stall_ms);
    } else if (w.in_concealment) {
      w.in_concealment = false;
      w.stalled = w.stalled || stalled;  // concealment gave way to silence: the stream stopped
      nlohmann::json f = source_id(st);
      f["started_uptime_s"] = std::round(w.burst_start_s * 1000.0) / 1000.0;
      f["concealed_ms"] =
          static_cast<double>(w.burst_frames) * 1000.0 / s->params().format.audio_rate;
      f["packets_lost"] = w.burst_lost;
      f["packets_late"] = w.burst_late;
      // This node's own stalls first: while the device or the loop thread stood still, the
      // stream looks stalled too (its packets wait unread), but it was not.
      f["cause"] = w.device_xrun         ? "device_xrun"
                   : w.loop_stall_ms > 0 ? "loop_stalled"
                   : w.stalled           ? "stream_stalled"
                   : w.burst_lost > 0    ? "packet_loss"
                   : w.burst_late > 0    ? "late_packets"
                                         : "delay_spike";
      if (w.loop_stall_ms > 0) f["loop_stall_ms"] = std::round(w.loop_stall_ms * 10.0) / 10.0;
      f["buffer"] = buffer_state(st, since_ms);
      event("concealment_burst", f, now);
    }
    if (late > 0) {
      if (!w.in_late) {
        w.in_late = true;
        w.late_start_s = t;
        w.late_packets = 0;
      }
      w.late_packets += late;
    } else if (w.in_late) {
      w.in_late = false;
      nlohmann::json f = source_id(st);
      f["started_uptime_s"] = std::round(w.late_start_s * 1000.0) / 1000.0;
      f["packets_late"] = w.late_packets;
      f["cause"] = "arrived after the playout deadline: jitter beyond the target delay";
      f["buffer"] = buffer_state(st, since_ms);
      event("late_burst", f, now);
    }
    if (st.drift_at_limit && !w.last.drift_at_limit) {
      nlohmann::json f = source_id(st);
      f["drift_ppm"] = st.drift_ppm;  // measured, beyond the limit when that is the cause
      f["drift_limit_ppm"] = PlayoutConfig{}.max_drift * 1e6;
      f["drift_integral_ppm"] = st.drift_integral_ppm;
      f["integral_limit_ppm"] = PlayoutConfig{}.max_integral * 1e6;
      f["speed"] = st.speed;
      f["cause"] =
          "drift compensation is at its limit: the sender's clock is beyond what it corrects";
      event("drift_limit", f, now);
    }
    if (st.packets_other_pt > 0 && w.last.packets_other_pt == 0) {  // the first such packet
      nlohmann::json f = source_id(st);
      f["packets"] = st.packets_other_pt - w.last.packets_other_pt;
      event("payload_type_changed", f, now);
    }
    w.last = st;
  }
}

}  // namespace rtpnode
