// The one statistics model of rtpnode (issue #7). Every figure the node reports — the periodic
// stats line, --stats-json, GET /stats, GET /metrics — comes from the two structs below, and
// every field is described once, in the field tables of stats_model.cpp: its JSON name, its
// Prometheus name in base units, counter or gauge, unit, and what it means (RFC definition
// where there is one). docs/STATS.md and docs/stats.schema.json are generated from those tables
// (`rtpnode --stats-doc`, `rtpnode --stats-schema`) and a test keeps them in step.
//
// Thread: everything here runs on the loop thread (the snapshots are copies).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "node/audio_backend.hpp"
#include "node/source.hpp"

namespace rtpnode {

/// Node-wide figures at one instant. Counters are monotonic from start.
struct NodeSnapshot {
  double uptime_s = 0;
  std::uint64_t memory_anon_bytes = 0;  ///< resident anonymous memory (/proc/self/status RssAnon)
  std::uint64_t memory_heap_bytes = 0;  ///< malloc in use: mallinfo2 uordblks + hblkhd
  std::uint64_t datagrams = 0;
  std::uint64_t packets_malformed = 0;
  std::vector<std::pair<std::string, std::uint64_t>> packets_rejected;  ///< by parse status
  std::uint64_t packets_unknown_payload_type = 0;
  std::uint64_t sources_refused = 0;
  std::uint64_t sources_active = 0;
  std::uint64_t sources_on_probation = 0;
  std::uint64_t probation_dropped = 0;
  std::uint64_t probation_evicted = 0;
  std::uint64_t sources_refused_per_host = 0;
  std::uint64_t rtcp_packets = 0;
  std::uint64_t rtcp_malformed = 0;
  std::uint64_t sender_reports = 0;
  std::uint64_t receiver_reports_sent = 0;
  std::uint64_t rtcp_foreign = 0;
  std::uint64_t ssrc_collisions = 0;
  std::uint64_t sap_sessions = 0, sap_packets = 0, sap_invalid = 0, sap_streams_refused = 0;
  std::uint64_t samples_clipped = 0;
  /// Over every source the node has had, departed ones included (SourceTable::totals).
  std::uint64_t sources_total = 0, packets_received = 0, packets_lost = 0, packets_late = 0,
                packets_duplicate = 0, underruns = 0, underrun_frames = 0;
  double concealed_s = 0;
  std::uint64_t packets_not_allowed = 0;
  std::uint64_t telephone_event_packets = 0;
  std::uint64_t telephone_events = 0;
  std::uint64_t byes = 0;
  std::uint64_t callbacks = 0;
  std::uint64_t xruns = 0;
  std::uint64_t mixer_refused = 0;
  std::uint64_t mixer_commands_deferred = 0;
  double cpu_load = 0;
  std::array<std::uint64_t, CallbackTimes::kBoundsUs.size() + 1>
      callback_buckets{};  ///< not cumulative
  std::uint64_t callback_count = 0;
  double callback_sum_s = 0;
  double callback_max_ms = 0;
  std::uint64_t http_requests = 0;
  std::uint64_t http_refused = 0;
  std::uint64_t http_forbidden = 0;
  std::uint64_t http_evicted = 0;
  std::uint64_t events = 0;
  std::string sync;                ///< "rtcp" | "absolute" | "none"
  double playout_delay_ms = 0;     ///< --sync absolute: capture -> DAC, ms; 0 otherwise
  bool wall_clock_synced = false;  ///< adjtimex: no STA_UNSYNC, not TIME_ERROR
  double wall_clock_maxerror_ms = 0;
  double wall_clock_esterror_ms = 0;
  std::uint64_t wall_clock_steps = 0;  ///< steps of the wall clock beyond 1 ms (WallClock)
  double sample_rate = 0;
  double device_skew_ppm = 0;
  std::uint64_t device_clock_jumps = 0;  ///< DeviceClock::jumps(): device position re-anchored
  std::string device;
  std::string device_state;  ///< Node::DeviceState: running, stalled, stopped
  bool device_up = true;
  std::uint64_t device_reopens = 0;
  std::uint64_t device_suspensions = 0;
  std::uint64_t device_reopen_failures = 0;
  double output_latency_ms = 0;
  double pa_output_latency_ms = 0;
  double render_lead_ms = 0;
  double loop_lateness_p999_ms = 0;  ///< 99.9th percentile of the loop's lateness past its
                                     ///< render deadlines, last Node::kLatenessWindow wakes
  double loop_lateness_max_ms = 0;   ///< the largest in that window
  std::uint64_t loop_wakeups = 0;    ///< render timer wakes while sources played
};

/// One source as reported: its statistics and its life state.
struct SourceReport {
  SourceStats stats;
  std::string state;  ///< "active" | "leaving" (BYE or timeout, queued audio playing) | "departed"
};

/// The /stats and --stats-json document: {"node": {...}, "sources": [...]}.
[[nodiscard]] nlohmann::json stats_json(const NodeSnapshot& node,
                                        const std::vector<SourceReport>& sources);
/// One source's JSON object (as in "sources").
[[nodiscard]] nlohmann::json source_json(const SourceReport& s);
/// The Prometheus text exposition format 0.0.4 of the same figures: names rtpnode_…, base units
/// (seconds), counters ending in _total, each family with # HELP and # TYPE; source families
/// labelled ssrc ("0x1a2b3c4d"), port and payload ("pcmu/8000/1"). Departed sources are not
/// exported (their series would otherwise never end).
[[nodiscard]] std::string prometheus_text(const NodeSnapshot& node,
                                          const std::vector<SourceReport>& sources);
/// The periodic stderr line: "[  12.0s] cb=… xruns=… sources=N" (malformed=… unknown_pt=… when
/// any), then per active source "| SSRC payload rx= lost= late= dup= conc=ms under= jit=ms
/// jb=playout/target ms e2e=ms drift=ppm"; " (final)" at exit. No newline.
[[nodiscard]] std::string stats_line(const NodeSnapshot& node,
                                     const std::vector<SourceReport>& sources, bool final);
/// Markdown reference of every field (docs/STATS.md).
[[nodiscard]] std::string stats_doc_markdown();
/// JSON Schema (draft 2020-12) of the stats document (docs/stats.schema.json).
[[nodiscard]] nlohmann::json stats_json_schema();

}  // namespace rtpnode
