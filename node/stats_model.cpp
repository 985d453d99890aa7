#include "node/stats_model.hpp"

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>

namespace rtpnode {

namespace {

using nlohmann::json;

enum class JsonType { integer, number, string, boolean };
enum class MetricType { none, counter, gauge };

/// One reported figure. `metric` is the Prometheus name after the family prefix (rtpnode_source_
/// or rtpnode_), in base units; the JSON value divided by `scale` gives it (ms -> s: 1000).
template <typename From>
struct Field {
  const char* name;
  JsonType type;
  MetricType metric_type;
  const char* metric;
  double scale;
  const char* unit;
  const char* help;
  json (*get)(const From&);
};

using SourceField = Field<SourceReport>;
using NodeField = Field<NodeSnapshot>;

#define SRC(NAME, TYPE, MT, METRIC, SCALE, UNIT, HELP, EXPR)         \
  SourceField {                                                      \
    NAME, JsonType::TYPE, MetricType::MT, METRIC, SCALE, UNIT, HELP, \
        [](const SourceReport& r) -> json {                          \
          const SourceStats& s = r.stats;                            \
          (void)s;                                                   \
          return EXPR;                                               \
        }                                                            \
  }
#define NODE(NAME, TYPE, MT, METRIC, SCALE, UNIT, HELP, EXPR)        \
  NodeField {                                                        \
    NAME, JsonType::TYPE, MetricType::MT, METRIC, SCALE, UNIT, HELP, \
        [](const NodeSnapshot& n) -> json { return EXPR; }           \
  }

std::string hex_ssrc(std::uint32_t ssrc) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08" PRIx32, ssrc);
  return buf;
}

// clang-format off
const SourceField kSourceFields[] = {
  SRC("state", string, none, nullptr, 1, "", "active: playing; leaving: BYE or --source-timeout, its queued audio still plays; departed: detached (the last 64 are kept)", r.state),
  SRC("ssrc", integer, none, nullptr, 1, "", "RTP SSRC (RFC 3550 §5.1); 0 for headerless PCM. Prometheus label `ssrc` (hex)", s.ssrc),
  SRC("ssrc_hex", string, none, nullptr, 1, "", "the SSRC as 0x%08x, as in selectors (`ssrc:0x…`)", hex_ssrc(s.ssrc)),
  SRC("port", integer, none, nullptr, 1, "", "local listen port. Prometheus label `port`", s.port),
  SRC("remote", string, none, nullptr, 1, "", "sender address ip:port of its RTP packets", s.remote),
  SRC("session", string, none, nullptr, 1, "", "the SDP session (s=) of the --sdp file or SAP announcement its port came from; empty for --listen", s.session),
  SRC("payload_type", integer, none, nullptr, 1, "", "RTP payload type (RFC 3551); 255 for headerless PCM", s.payload_type),
  SRC("payload", string, none, nullptr, 1, "", "codec/clock rate/channels, e.g. pcmu/8000/1. Prometheus label `payload`", s.payload),
  SRC("packets_received", integer, counter, "packets_received_total", 1, "packets", "unique packets of this SSRC, late ones included, duplicates not (RFC 3550 A.3 received minus duplicates)", s.packets_received),
  SRC("packets_lost", integer, gauge, "packets_lost", 1, "packets", "true loss: RFC 3550 A.3 expected − unique packets received (≥ 0); decreases when a packet counted lost arrives late, hence a gauge. RTCP RRs carry the A.3 figure, which counts duplicates as received (lower by packets_duplicate)", s.packets_lost),
  SRC("packets_late", integer, counter, "packets_late_total", 1, "packets", "arrived after their playout deadline; dropped", s.packets_late),
  SRC("packets_duplicate", integer, counter, "packets_duplicate_total", 1, "packets", "sequence number already received; dropped", s.packets_duplicate),
  SRC("packets_reordered", integer, counter, "packets_reordered_total", 1, "packets", "arrived after a higher sequence number, still in time", s.packets_reordered),
  SRC("packets_malformed", integer, counter, "packets_malformed_total", 1, "packets", "payloads the decoder refused (corrupt, partial frame, too large)", s.packets_malformed),
  SRC("packets_length_mismatch", integer, counter, "packets_length_mismatch_total", 1, "packets", "packets whose payload decodes to another number of frames than their RTP timestamp advances to the next packet, in runs of 4 or more: the payload type is mapped with the wrong sample size (L16/L24), channel count or codec; warned once on stderr", s.packets_length_mismatch),
  SRC("clock_rate_mismatches", integer, counter, "clock_rate_mismatches_total", 1, "windows", "windows of steady packets (2 s, or 0.5 s when off by a factor of 1.8 or more) in which RTP time advanced more than 5 % off the mapping's clock rate (a wrong --payload rate); the first holds the target delay at the start delay and is warned once on stderr with the likely rate", s.clock_rate_mismatches),
  SRC("measured_clock_rate", number, gauge, "measured_clock_rate_hz", 1, "Hz", "RTP ticks per second of arrival time over the last window of steady packets (2 s; 0.5 s when off by a factor of 1.8 or more; 0 until one was measured)", s.measured_clock_rate),
  SRC("packets_other_payload_type", integer, counter, "packets_other_payload_type_total", 1, "packets", "packets of this SSRC with another payload type: counted for loss, not played", s.packets_other_pt),
  SRC("packets_overflow", integer, counter, "packets_overflow_total", 1, "packets", "dropped because the jitter buffer was full, or a raw sender ran further ahead of real time than --max-latency", s.packets_overflow),
  SRC("raw_backlog_ms", number, gauge, "raw_backlog_seconds", 1e3, "ms", "headerless PCM: audio held because its sender runs ahead of real time (a byte stream: every datagram plays once, in order), at most --max-latency; 0 for RTP", s.raw_backlog_ms),
  SRC("packets_comfort_noise", integer, counter, "packets_comfort_noise_total", 1, "packets", "RFC 3389 comfort-noise packets (PT 13)", s.packets_comfort_noise),
  SRC("frames_concealed", integer, counter, "concealed_frames_total", 1, "frames (audio rate)", "frames synthesised for missing audio: loss and delay-spike expansion", s.frames_concealed),
  SRC("concealment_events", integer, counter, "concealment_events_total", 1, "events", "runs of consecutive concealment", s.concealment_events),
  SRC("fec_recovered", integer, counter, "fec_recovered_packets_total", 1, "packets", "lost packets rebuilt from the next packet's redundancy: Opus in-band FEC (RFC 6716 §2.1.7) or an RFC 2198 redundant block", s.fec_recovered),
  SRC("expansions", integer, counter, "expansions_total", 1, "events", "concealment steps that raised the playout delay (late-arrival spikes)", s.expansions),
  SRC("frames_gap", integer, counter, "gap_frames_total", 1, "frames (audio rate)", "frames filled where the sender sent nothing (DTX, pause)", s.frames_gap),
  SRC("frames_start_skipped", integer, counter, "start_skipped_frames_total", 1, "frames (audio rate)", "frames dropped before the stream's first audible frame, so that it starts at the target delay its first packets justify plus their jitter once more, instead of the start delay (--profile music played to a device; never heard)", s.frames_start_skipped),
  SRC("frames_silent", integer, counter, "silent_frames_total", 1, "frames (audio rate)", "silence after concealment gave up (more than 100 ms missing)", s.frames_silent),
  SRC("resyncs", integer, counter, "resyncs_total", 1, "events", "re-anchors after a sender restart or timestamp jump", s.resyncs),
  SRC("underruns", integer, counter, "underruns_total", 1, "events", "device blocks that began with this source's audio missing (the mixer played zeros)", s.underruns),
  SRC("underrun_frames", integer, counter, "underrun_frames_total", 1, "frames (device rate)", "device frames zero-filled for missing audio", s.underrun_frames),
  SRC("frames_played", integer, counter, "played_frames_total", 1, "frames (device rate)", "device frames mixed", s.frames_played),
  SRC("frames_skipped", integer, counter, "skipped_frames_total", 1, "frames (device rate)", "frames that reached the mixer after their device frame had passed", s.frames_skipped),
  SRC("jitter_ms", number, gauge, "jitter_seconds", 1e3, "ms", "RFC 3550 §6.4.1 interarrival jitter J (smoothed by 1/16); in RTCP RR in timestamp units", s.jitter_ms),
  SRC("jitter_max_ms", number, gauge, "jitter_max_seconds", 1e3, "ms", "the largest J after any packet of the stream", s.jitter_max_ms),
  SRC("jitter_mean_ms", number, gauge, "jitter_mean_seconds", 1e3, "ms", "the mean of J over the packets after the first (Wireshark's Mean Jitter)", s.jitter_mean_ms),
  SRC("max_gap_ms", number, gauge, "max_gap_seconds", 1e3, "ms", "the longest time between two packets' arrivals", s.max_gap_ms),
  SRC("latency_mode", string, none, nullptr, 1, "", "auto (adaptive target) or fixed (--latency)", s.adaptive ? "auto" : "fixed"),
  SRC("target_delay_ms", number, gauge, "target_delay_seconds", 1e3, "ms", "jitter-buffer target: delay over the fastest packet that keeps late loss within the profile's budget", s.target_delay_ms),
  SRC("playout_delay_ms", number, gauge, "playout_delay_seconds", 1e3, "ms", "delay over the fastest packet that the last decoded packet played with", s.playout_delay_ms),
  SRC("queued_ms", number, gauge, "queued_seconds", 1e3, "ms", "audio queued ahead of the device (ring and resampler): what a flush drops", s.queued_ms),
  SRC("speed", number, gauge, "speed_ratio", 1, "ratio", "playback speed applied by the resampler (1 = none): drift feed-forward + delay trim", s.speed),
  SRC("frames_resampled", integer, counter, "resampled_frames_total", 1, "frames (device rate)", "frames that went through the resampler's filter; the rest of frames_played passed straight through (--resampler-bypass, sources at the device rate)", s.frames_resampled),
  SRC("resampler_slips", integer, counter, "resampler_slips_total", 1, "events", "one-frame slips that follow drift while the resampler is bypassed (each filters ~21 ms at 0.1 % speed)", s.resampler_slips),
  SRC("drift_ppm", number, gauge, "drift_ratio", 1e6, "ppm", "sender clock against the device clock (> 0: sender fast), estimated from arrival times; 0 until estimated (~5 s) or with --drift off. Compensation applies at most ±5000 ppm of it (drift_at_limit)", s.drift_ppm),
  SRC("drift_integral_ppm", number, gauge, "drift_integral_ratio", 1e6, "ppm", "integral term of the speed loop: what the drift estimate misses; limit ±2000 ppm", s.drift_integral_ppm),
  SRC("drift_at_limit", boolean, gauge, "drift_at_limit", 1, "0/1", "drift compensation at a limit: feed-forward at ±5000 ppm or integral at ±2000 ppm (the sender's clock is beyond what is corrected)", s.drift_at_limit),
  SRC("arrival_to_dac_ms", number, gauge, "arrival_to_dac_seconds", 1e3, "ms", "end-to-end: packet arrival -> its first frame at the DAC, PortAudio output latency included (exponential mean)", s.arrival_to_dac_ms),
  SRC("synced", boolean, gauge, "synced", 1, "0/1", "placed on the senders' NTP timeline from RTCP SR (RFC 3550 §6.4.1)", s.synced),
  SRC("sync_error_ms", number, gauge, "sync_error_seconds", 1e3, "ms", "synced: actual − timeline play time of the last decoded packet (> 0: late)", s.sync_error_ms),
  SRC("capture_to_dac_ms", number, gauge, "capture_to_dac_seconds", 1e3, "ms", "synced: sender capture instant (SR NTP) -> DAC, assuming the receiver's wall clock agrees with the sender's NTP", s.capture_to_dac_ms),
  SRC("offset_ms", number, gauge, "offset_seconds", 1e3, "ms", "user offset on the timeline (--offset, control)", s.offset_ms),
  SRC("gain_db", number, gauge, "gain_decibels", 1, "dB", "user gain (--gain, control)", s.gain_db),
  SRC("muted", boolean, gauge, "muted", 1, "0/1", "muted by control", s.muted),
  SRC("route", string, none, nullptr, 1, "", "device channels, 1-based (\"1,2\"); empty = standard mapping", s.route),
  SRC("sender_reports", integer, counter, "sender_reports_total", 1, "packets", "RTCP SRs received for this SSRC", s.sender_reports),
  SRC("sender_reports_ignored", integer, counter, "sender_reports_ignored_total", 1, "packets", "SRs whose NTP/RTP mapping jumped beyond 2000 ppm of the previous one + 5 ms and that the next SR did not confirm; not applied", s.sender_reports_ignored),
  SRC("placements", integer, counter, "placements_total", 1, "events", "rings replaced: re-placement on the timeline, offset change, flush", s.placements),
  SRC("flushes", integer, counter, "flushes_total", 1, "events", "control flushes", s.flushes),
  SRC("placements_forced", integer, counter, "placements_forced_total", 1, "events", "leaving rings cut short because the source already had 3 rings in the mixer (re-placements in quick succession)", s.placements_forced),
  SRC("media_clock", string, none, nullptr, 1, "", "RFC 7273 reference clock of the stream's RTP timestamps from its SDP (ntp or ptp; a=mediaclk:direct): the source is placed on the timeline without Sender Reports; empty: none", s.media_clock),
  SRC("short_of_delay", integer, counter, "short_of_delay_total", 1, "packets", "--sync absolute: decoded packets whose place (capture + --playout-delay) had already passed; they play late: the delay is shorter than this path", s.short_of_delay),
  SRC("placements_deferred", integer, counter, "placements_deferred_total", 1, "events", "timeline re-placements postponed: a placed source re-places at most every 500 ms", s.placements_deferred),
  SRC("mixer_refusals", integer, counter, "mixer_refusals_total", 1, "events", "times the mixer refused this source's ring (no free slot); offered again", s.mixer_refusals),
};

const NodeField kNodeFields[] = {
  NODE("uptime_s", number, gauge, "uptime_seconds", 1, "s", "time since the device started", n.uptime_s),
  NODE("memory_anon_bytes", integer, gauge, "memory_anon_bytes", 1, "bytes", "the process's own resident memory (RssAnon in /proc/self/status; JACK's shared segment, ~100 MB and counted in RSS, is not included); with memory_heap_bytes it tells a leak (both grow) from heap fragmentation (this grows alone)", n.memory_anon_bytes),
  NODE("memory_heap_bytes", integer, gauge, "memory_heap_bytes", 1, "bytes", "bytes the process holds from malloc (glibc mallinfo2: in use in the heap plus mmapped blocks)", n.memory_heap_bytes),
  NODE("datagrams", integer, counter, "datagrams_total", 1, "datagrams", "UDP datagrams received on every listen socket (RTP ports)", n.datagrams),
  NODE("packets_malformed", integer, counter, "packets_malformed_total", 1, "packets", "datagrams on RTP ports that are not valid RTP (RFC 3550 §5.1, A.1 checks), RTCP excluded; see packets_rejected", n.packets_malformed),
  NODE("packets_not_allowed", integer, counter, "packets_not_allowed_total", 1, "datagrams", "RTP, RTCP and raw datagrams from addresses outside every --allow block; dropped before parsing", n.packets_not_allowed),
  NODE("telephone_event_packets", integer, counter, "telephone_event_packets_total", 1, "packets", "RTP packets of a payload type mapped to telephone-event (RFC 4733): reported as events, not played", n.telephone_event_packets),
  NODE("telephone_events", integer, counter, "telephone_events_total", 1, "events", "RFC 4733 events (DTMF digits) reported: event dtmf in the event log", n.telephone_events),
  NODE("packets_unknown_payload_type", integer, counter, "packets_unknown_payload_type_total", 1, "packets", "valid RTP of a new SSRC with a payload type no --payload maps; dropped", n.packets_unknown_payload_type),
  NODE("sources_active", integer, gauge, "sources_active", 1, "sources", "sources playing (state active)", n.sources_active),
  NODE("sources_total", integer, counter, "sources_total", 1, "sources", "sources this node has played (admitted), departed ones included", n.sources_total),
  NODE("packets_received", integer, counter, "packets_received_total", 1, "packets", "packets_received of every source the node has had, departed ones included; never decreases", n.packets_received),
  NODE("packets_lost", integer, counter, "packets_lost_total", 1, "packets", "packets_lost of every source the node has had, departed ones included; its high-water mark, so it never decreases", n.packets_lost),
  NODE("packets_late", integer, counter, "packets_late_total", 1, "packets", "packets_late of every source, departed ones included", n.packets_late),
  NODE("packets_duplicate", integer, counter, "packets_duplicate_total", 1, "packets", "packets_duplicate of every source, departed ones included", n.packets_duplicate),
  NODE("underruns", integer, counter, "underruns_total", 1, "events", "underruns of every source, departed ones included", n.underruns),
  NODE("underrun_frames", integer, counter, "underrun_frames_total", 1, "frames (device rate)", "underrun_frames of every source, departed ones included", n.underrun_frames),
  NODE("concealed_s", number, counter, "concealed_seconds_total", 1, "s", "audio synthesised for missing packets (frames_concealed / audio rate) over every source, departed ones included", n.concealed_s),
  NODE("sources_refused", integer, counter, "sources_refused_total", 1, "sources", "new streams refused: --max-sources or --max-sources-per-host reached (each stream once while it stays refused) or codec error", n.sources_refused),
  NODE("sources_refused_per_host", integer, counter, "sources_refused_per_host_total", 1, "sources", "of sources_refused: new streams refused because their sender's IP address already had --max-sources-per-host sources", n.sources_refused_per_host),
  NODE("sources_on_probation", integer, gauge, "sources_on_probation", 1, "sources", "new SSRCs waiting for their second in-sequence packet (RFC 3550 A.1)", n.sources_on_probation),
  NODE("probation_dropped", integer, counter, "probation_dropped_total", 1, "packets", "new-SSRC packets dropped because their sending host already holds its share (an eighth) of the probation table (a flood of SSRCs from one host)", n.probation_dropped),
  NODE("probation_evicted", integer, counter, "probation_evicted_total", 1, "packets", "candidates on probation pushed out by newer ones because the table was full (a flood of SSRCs from many addresses); oldest first", n.probation_evicted),
  NODE("rtcp_packets", integer, counter, "rtcp_packets_total", 1, "compounds", "valid RTCP compounds received (RTCP port or muxed, RFC 5761)", n.rtcp_packets),
  NODE("rtcp_malformed", integer, counter, "rtcp_malformed_total", 1, "datagrams", "RTCP failing the RFC 3550 A.2 checks; dropped", n.rtcp_malformed),
  NODE("sap_sessions", integer, gauge, "sap_sessions", 1, "sessions", "sessions SAP announces that are received now (--sap; RFC 2974), after --sap-filter", n.sap_sessions),
  NODE("sap_packets", integer, counter, "sap_packets_total", 1, "packets", "SAP datagrams heard (--sap) from --allow'ed announcers", n.sap_packets),
  NODE("sap_invalid", integer, counter, "sap_invalid_total", 1, "packets", "SAP datagrams that do not parse (version, encryption, compression, payload type) or whose SDP does not", n.sap_invalid),
  NODE("sap_streams_refused", integer, counter, "sap_streams_refused_total", 1, "streams", "announced streams not received: beyond 16 per session or 4 x --max-sources announced streams in all", n.sap_streams_refused),
  NODE("ssrc_collisions", integer, counter, "ssrc_collisions_total", 1, "senders", "senders that used an SSRC another sender on the same port already used (RFC 3550 §8.2): each plays as a source of its own, told apart by transport address", n.ssrc_collisions),
  NODE("rtcp_foreign", integer, counter, "rtcp_foreign_total", 1, "packets", "RTCP SR and BYE about a source that came from another host than its RTP (RFC 3550 §8.2); ignored", n.rtcp_foreign),
  NODE("sender_reports", integer, counter, "sender_reports_total", 1, "packets", "RTCP SR packets received", n.sender_reports),
  NODE("receiver_reports_sent", integer, counter, "receiver_reports_sent_total", 1, "compounds", "RTCP RR compounds sent to senders (RFC 3550 §6.4.2)", n.receiver_reports_sent),
  NODE("byes", integer, counter, "byes_total", 1, "SSRCs", "SSRCs in RTCP BYE packets received", n.byes),
  NODE("callbacks", integer, counter, "callbacks_total", 1, "callbacks", "device callbacks so far", n.callbacks),
  NODE("samples_clipped", integer, counter, "samples_clipped_total", 1, "samples", "output samples beyond full scale (|x| > 1; NaN) clipped to ±1 (NaN to 0) before the device: a hot or misdecoded mix never wraps around", n.samples_clipped),
  NODE("xruns", integer, counter, "xruns_total", 1, "events", "device under/overflows flagged by PortAudio (paOutputUnderflow/Overflow)", n.xruns),
  NODE("mixer_refused", integer, counter, "mixer_refused_total", 1, "streams", "rings the audio thread refused because every mixer slot was taken (offered again by their source); 0 unless something is wrong", n.mixer_refused),
  NODE("mixer_commands_deferred", integer, counter, "mixer_commands_deferred_total", 1, "commands", "mixer commands that found the command ring full and waited on the loop side (never dropped)", n.mixer_commands_deferred),
  NODE("cpu_load", number, gauge, "cpu_load_ratio", 1, "ratio", "Pa_GetStreamCpuLoad: share of the callback's time budget used", n.cpu_load),
  NODE("callback_max_ms", number, gauge, "callback_max_seconds", 1e3, "ms", "longest callback so far", n.callback_max_ms),
  NODE("http_requests", integer, counter, "http_requests_total", 1, "requests", "HTTP requests answered (--http)", n.http_requests),
  NODE("http_refused", integer, counter, "http_refused_total", 1, "connections", "HTTP connections refused: not from a local address", n.http_refused),
  NODE("http_forbidden", integer, counter, "http_forbidden_total", 1, "requests", "control requests refused: Host not this server, cross-origin, or missing/wrong bearer token (403/401)", n.http_forbidden),
  NODE("http_evicted", integer, counter, "http_evicted_total", 1, "connections", "idle HTTP connections cut short so that one slot stays free", n.http_evicted),
  NODE("events", integer, counter, "events_total", 1, "events", "events written to --event-log", n.events),
  NODE("sync", string, none, nullptr, 1, "", "--sync: rtcp, absolute or none", n.sync),
  NODE("playout_delay_ms", number, gauge, "playout_delay_seconds", 1e3, "ms", "--sync absolute: sender capture instant (NTP) to DAC on this node's wall clock; 0 with other modes", n.playout_delay_ms),
  NODE("wall_clock_synced", boolean, gauge, "wall_clock_synced", 1, "0/1", "the system clock is disciplined (adjtimex(2): no STA_UNSYNC, not TIME_ERROR); --sync absolute plays in step with other nodes only when it is", n.wall_clock_synced),
  NODE("wall_clock_maxerror_ms", number, gauge, "wall_clock_maxerror_seconds", 1e3, "ms", "the kernel's maximum error bound of the system clock (adjtimex maxerror)", n.wall_clock_maxerror_ms),
  NODE("wall_clock_esterror_ms", number, gauge, "wall_clock_esterror_seconds", 1e3, "ms", "the kernel's estimated error of the system clock (adjtimex esterror)", n.wall_clock_esterror_ms),
  NODE("wall_clock_steps", integer, counter, "wall_clock_steps_total", 1, "events", "steps of the system clock beyond 1 ms against the monotonic clock (--sync absolute re-places every source)", n.wall_clock_steps),
  NODE("sample_rate", number, gauge, "sample_rate_hertz", 1, "Hz", "device sample rate (nominal)", n.sample_rate),
  NODE("device_skew_ppm", number, gauge, "device_skew_ratio", 1e6, "ppm", "device clock against the monotonic clock, measured from callback positions", n.device_skew_ppm),
  NODE("device_clock_jumps", integer, counter, "device_clock_jumps_total", 1, "events", "times the device position left the map of device frames against the monotonic clock by more than 2 ms (xrun, server stall, restart) and the map was re-anchored", n.device_clock_jumps),
  NODE("device", string, none, nullptr, 1, "", "host API, device, rate and channels", n.device),
  NODE("device_state", string, none, nullptr, 1, "", "running: callbacks keep coming; stalled: none for 500 ms while the stream is active; stopped: the backend stopped the stream (JACK server gone, device error); suspended: released on purpose with no source (--idle-suspend)", n.device_state),
  NODE("device_up", boolean, gauge, "device_up", 1, "0/1", "1 while device_state is running or suspended", n.device_up),
  NODE("device_suspensions", integer, counter, "device_suspensions_total", 1, "suspensions", "times the device was released for lack of a source (--idle-suspend)", n.device_suspensions),
  NODE("device_reopens", integer, counter, "device_reopens_total", 1, "reopens", "times a lost device was opened again and started (--device-retry on)", n.device_reopens),
  NODE("device_reopen_failures", integer, counter, "device_reopen_failures_total", 1, "attempts", "attempts to reopen a lost device that failed (the device or server still gone)", n.device_reopen_failures),
  NODE("output_latency_ms", number, gauge, "output_latency_seconds", 1e3, "ms", "device latency the node uses: callback position -> DAC", n.output_latency_ms),
  NODE("pa_output_latency_ms", number, gauge, "pa_output_latency_seconds", 1e3, "ms", "Pa_GetStreamInfo outputLatency, for comparison", n.pa_output_latency_ms),
  NODE("render_lead_ms", number, gauge, "render_lead_seconds", 1e3, "ms", "how far ahead of the device the loop renders", n.render_lead_ms),
  NODE("loop_lateness_p999_ms", number, gauge, "loop_lateness_p999_seconds", 1e3, "ms", "99.9th percentile of how late the loop woke past its render deadlines (the last 4096 wakes while sources played; libuv rounds each sleep up to whole ms, so up to 1 ms of it is by design): the margin the render lead needs beyond one period", n.loop_lateness_p999_ms),
  NODE("loop_lateness_max_ms", number, gauge, "loop_lateness_max_seconds", 1e3, "ms", "the latest of those wakes", n.loop_lateness_max_ms),
  NODE("loop_wakeups", integer, counter, "loop_wakeups_total", 1, "events", "render deadlines the loop slept until while sources played (it sleeps between them; datagrams wake it too)", n.loop_wakeups),
};
// clang-format on

#undef SRC
#undef NODE

const char* json_type_name(JsonType t) {
  switch (t) {
    case JsonType::integer:
      return "integer";
    case JsonType::number:
      return "number";
    case JsonType::string:
      return "string";
    case JsonType::boolean:
      return "boolean";
  }
  return "null";
}

double to_double(const json& v) {
  if (v.is_boolean()) return v.get<bool>() ? 1.0 : 0.0;
  if (v.is_number()) return v.get<double>();
  return 0.0;
}

/// Prometheus label value escaping (exposition format: backslash, double quote, newline).
std::string escape_label(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

/// Shortest round-trip text of a double as Prometheus accepts it (Go ParseFloat syntax).
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

json histogram_json(const NodeSnapshot& n) {
  json bounds = json::array(), counts = json::array();
  for (double b : CallbackTimes::kBoundsUs) bounds.push_back(b);
  for (std::uint64_t c : n.callback_buckets) counts.push_back(c);
  return {{"bounds_us", bounds},
          {"counts", counts},
          {"count", n.callback_count},
          {"sum_s", n.callback_sum_s}};
}

}  // namespace

json source_json(const SourceReport& r) {
  json j = json::object();
  for (const SourceField& f : kSourceFields) j[f.name] = f.get(r);
  return j;
}

json stats_json(const NodeSnapshot& n, const std::vector<SourceReport>& sources) {
  json node = json::object();
  for (const NodeField& f : kNodeFields) node[f.name] = f.get(n);
  json rejected = json::object();
  for (const auto& [reason, count] : n.packets_rejected) rejected[reason] = count;
  node["packets_rejected"] = rejected;
  node["callback_duration"] = histogram_json(n);
  json list = json::array();
  for (const SourceReport& s : sources) list.push_back(source_json(s));
  return {{"node", node}, {"sources", list}};
}

std::string prometheus_text(const NodeSnapshot& n, const std::vector<SourceReport>& sources) {
  std::ostringstream o;
  auto header = [&o](const std::string& name, const char* help, const char* type) {
    o << "# HELP " << name << ' ' << help << '\n' << "# TYPE " << name << ' ' << type << '\n';
  };
  for (const NodeField& f : kNodeFields) {
    if (f.metric_type == MetricType::none) continue;
    const std::string name = std::string("rtpnode_") + f.metric;
    header(name, f.help, f.metric_type == MetricType::counter ? "counter" : "gauge");
    o << name << ' ' << number(to_double(f.get(n)) / f.scale) << '\n';
  }
  header("rtpnode_packets_rejected_total",
         "datagrams on RTP ports rejected before reaching a source, by reason (rtcp: RTCP muxed on "
         "the RTP port, handled as RTCP)",
         "counter");
  for (const auto& [reason, count] : n.packets_rejected)
    o << "rtpnode_packets_rejected_total{reason=\"" << escape_label(reason) << "\"} " << count
      << '\n';
  header("rtpnode_callback_duration_seconds", "duration of each device callback (mixing included)",
         "histogram");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < n.callback_buckets.size(); ++i) {
    cumulative += n.callback_buckets[i];
    const std::string le =
        i < CallbackTimes::kBoundsUs.size() ? number(CallbackTimes::kBoundsUs[i] / 1e6) : "+Inf";
    o << "rtpnode_callback_duration_seconds_bucket{le=\"" << le << "\"} " << cumulative << '\n';
  }
  o << "rtpnode_callback_duration_seconds_sum " << number(n.callback_sum_s) << '\n';
  o << "rtpnode_callback_duration_seconds_count " << cumulative << '\n';
  header("rtpnode_info", "constant 1; the device and sync mode as labels", "gauge");
  o << "rtpnode_info{device=\"" << escape_label(n.device) << "\",sync=\"" << escape_label(n.sync)
    << "\"} 1\n";

  std::vector<const SourceReport*> live;
  for (const SourceReport& s : sources)
    if (s.state != "departed") live.push_back(&s);
  auto labels = [](const SourceReport& s) {
    return "ssrc=\"" + hex_ssrc(s.stats.ssrc) + "\",port=\"" + std::to_string(s.stats.port) +
           "\",payload=\"" + escape_label(s.stats.payload) + "\"";
  };
  header("rtpnode_source_info", "constant 1 per source; its sender, state and route as labels",
         "gauge");
  for (const SourceReport* s : live)
    o << "rtpnode_source_info{" << labels(*s) << ",remote=\"" << escape_label(s->stats.remote)
      << "\",state=\"" << escape_label(s->state) << "\",route=\"" << escape_label(s->stats.route)
      << "\"} 1\n";
  for (const SourceField& f : kSourceFields) {
    if (f.metric_type == MetricType::none) continue;
    const std::string name = std::string("rtpnode_source_") + f.metric;
    header(name, f.help, f.metric_type == MetricType::counter ? "counter" : "gauge");
    for (const SourceReport* s : live)
      o << name << '{' << labels(*s) << "} " << number(to_double(f.get(*s)) / f.scale) << '\n';
  }
  return o.str();
}

std::string stats_doc_markdown() {
  std::ostringstream o;
  o << "# rtpnode statistics\n\n"
       "Generated by `rtpnode --stats-doc` from the field tables of `node/stats_model.cpp`; a "
       "test\n"
       "fails when this file and the code disagree. The same figures appear in the stats line\n"
       "(a subset), `--stats-json FILE`, `GET /stats` (JSON, schema `docs/stats.schema.json`) and\n"
       "`GET /metrics` (Prometheus text format 0.0.4).\n\n"
       "Counters only grow while the process runs; gauges are the value now. Prometheus names are\n"
       "in base units (seconds, ratios); JSON keeps milliseconds and ppm as named.\n\n"
       "## Node (`node` in JSON, `rtpnode_…` in Prometheus)\n\n"
       "| JSON | Prometheus | type | unit | meaning |\n|---|---|---|---|---|\n";
  for (const NodeField& f : kNodeFields)
    o << "| `" << f.name << "` | "
      << (f.metric ? std::string("`rtpnode_") + f.metric + "`"
                   : std::string("label of `rtpnode_info`"))
      << " | "
      << (f.metric_type == MetricType::counter ? "counter"
          : f.metric_type == MetricType::gauge ? "gauge"
                                               : json_type_name(f.type))
      << " | " << f.unit << " | " << f.help << " |\n";
  o << "| `packets_rejected` | `rtpnode_packets_rejected_total{reason}` | counter | packets | "
       "datagrams on RTP ports "
       "rejected before reaching a source, by reason |\n"
       "| `callback_duration` | `rtpnode_callback_duration_seconds` | histogram | s | duration of "
       "each device callback; "
       "JSON: `bounds_us` (bucket upper bounds), `counts` (per bucket, not cumulative, last = "
       "above the last bound), "
       "`count`, `sum_s` |\n";
  o << "\n## Sources (`sources[]` in JSON, `rtpnode_source_…{ssrc,port,payload}` in Prometheus)\n\n"
       "Departed sources stay in JSON (the last 64) but are not exported to Prometheus.\n\n"
       "| JSON | Prometheus | type | unit | meaning |\n|---|---|---|---|---|\n";
  for (const SourceField& f : kSourceFields)
    o << "| `" << f.name << "` | "
      << (f.metric ? std::string("`rtpnode_source_") + f.metric + "`" : std::string("label/info"))
      << " | "
      << (f.metric_type == MetricType::counter ? "counter"
          : f.metric_type == MetricType::gauge ? "gauge"
                                               : json_type_name(f.type))
      << " | " << f.unit << " | " << f.help << " |\n";
  return o.str();
}

json stats_json_schema() {
  auto object_of = [](auto fields) {
    json props = json::object(), required = json::array();
    for (const auto& f : fields) {
      props[f.name] = {{"type", json_type_name(f.type)}, {"description", f.help}};
      required.push_back(f.name);
    }
    return json{{"type", "object"}, {"properties", props}, {"required", required}};
  };
  json node = object_of(std::span(kNodeFields));
  node["properties"]["packets_rejected"] = {
      {"type", "object"}, {"additionalProperties", {{"type", "integer"}, {"minimum", 0}}}};
  node["properties"]["callback_duration"] = {
      {"type", "object"},
      {"properties",
       {{"bounds_us", {{"type", "array"}, {"items", {{"type", "number"}}}}},
        {"counts", {{"type", "array"}, {"items", {{"type", "integer"}, {"minimum", 0}}}}},
        {"count", {{"type", "integer"}, {"minimum", 0}}},
        {"sum_s", {{"type", "number"}, {"minimum", 0}}}}},
      {"required", {"bounds_us", "counts", "count", "sum_s"}},
      {"additionalProperties", false}};
  node["required"].push_back("packets_rejected");
  node["required"].push_back("callback_duration");
  node["additionalProperties"] = false;
  json source = object_of(std::span(kSourceFields));
  source["properties"]["state"]["enum"] = {"active", "leaving", "departed"};
  source["additionalProperties"] = false;
  return {{"$schema", "https://json-schema.org/draft/2020-12/schema"},
          {"$id", "https://rtpnode.invalid/stats.schema.json"},
          {"title", "rtpnode statistics (GET /stats, --stats-json)"},
          {"type", "object"},
          {"properties", {{"node", node}, {"sources", {{"type", "array"}, {"items", source}}}}},
          {"required", {"node", "sources"}},
          {"additionalProperties", false}};
}

std::string stats_line(const NodeSnapshot& node, const std::vector<SourceReport>& sources,
                       bool final) {
  std::size_t active = 0;
  for (const SourceReport& r : sources) active += r.state == "active" ? 1 : 0;
  char buf[320];
  std::snprintf(buf, sizeof buf, "[%7.1fs] cb=%" PRIu64 " xruns=%" PRIu64 " sources=%zu",
                node.uptime_s, node.callbacks, node.xruns, active);
  std::string line = buf;
  if (node.samples_clipped) line += " clipped=" + std::to_string(node.samples_clipped);
  if (node.packets_malformed || node.packets_unknown_payload_type)
    line += " malformed=" + std::to_string(node.packets_malformed) +
            " unknown_pt=" + std::to_string(node.packets_unknown_payload_type);
  for (const SourceReport& r : sources) {
    if (r.state != "active") continue;
    const SourceStats& st = r.stats;
    const double rate = st.audio_rate > 0 ? st.audio_rate : 1.0;
    std::snprintf(
        buf, sizeof buf,
        " | %08" PRIx32 " %s rx=%" PRIu64 " lost=%" PRId64 " late=%" PRIu64 " dup=%" PRIu64
        " conc=%.0fms under=%" PRIu64 " jit=%.1fms jb=%.0f/%.0fms e2e=%.1fms drift=%+.1fppm",
        st.ssrc, st.payload.c_str(), st.packets_received, st.packets_lost, st.packets_late,
        st.packets_duplicate, static_cast<double>(st.frames_concealed) * 1000.0 / rate,
        st.underruns, st.jitter_ms, st.playout_delay_ms, st.target_delay_ms, st.arrival_to_dac_ms,
        st.drift_ppm);
    line += buf;
    if (st.packets_malformed > 0) line += " undecodable=" + std::to_string(st.packets_malformed);
    if (st.packets_length_mismatch > 0)
      line += " length_mismatch=" + std::to_string(st.packets_length_mismatch);
    if (st.clock_rate_mismatches > 0)
      line += " clock_rate=" + std::to_string(static_cast<long>(st.measured_clock_rate)) + "Hz?";
  }
  return final ? line + " (final)" : line;
}

}  // namespace rtpnode
