// Node's reporting side (issue #13: the stats snapshot beside stats_model): the snapshot of the
// node's figures, the --stats-json file and the stats line, events, RTCP Receiver Reports and the
// HTTP answers. Construction, wiring, the loop's tick and run() are in node.cpp.
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <iostream>
#include <nlohmann/json.hpp>

#include "node/atomic_file.hpp"
#include "node/control_api.hpp"
#include "node/e_model.hpp"
#include "node/node.hpp"

namespace rtpnode {

namespace {
mono_ns_t now_ns() {
  return node_now_ns();
}

/// Resident anonymous memory: "RssAnon:  N kB" in /proc/self/status; 0 when unreadable.
std::uint64_t process_anon_bytes() {
  std::FILE* f = std::fopen("/proc/self/status", "re");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "RssAnon: %llu kB", &kb) == 1) break;
  std::fclose(f);
  return kb * 1024;
}

/// Bytes held from malloc: glibc's in-use heap bytes plus mmapped blocks (mallinfo2, glibc 2.33).
std::uint64_t process_heap_bytes() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<std::uint64_t>(m.uordblks) + static_cast<std::uint64_t>(m.hblkhd);
}
}  // namespace

NodeSnapshot Node::snapshot() const {
  NodeSnapshot n;
  const DevicePosition pos = mixer_->position();
  n.uptime_s = started_ns_ ? static_cast<double>(now_ns() - started_ns_) * 1e-9 : 0.0;
  n.memory_anon_bytes = process_anon_bytes();
  n.memory_heap_bytes = process_heap_bytes();
  n.datagrams = demux_->stats().datagrams;
  for (std::size_t i = 0; i < kRtpParseStatusCount; ++i) {
    if (i == static_cast<std::size_t>(RtpParseStatus::ok)) continue;
    n.packets_rejected.emplace_back(std::string(to_string(static_cast<RtpParseStatus>(i))),
                                    demux_->stats().rejected[i]);
    if (i != static_cast<std::size_t>(RtpParseStatus::rtcp))
      n.packets_malformed += demux_->stats().rejected[i];
  }
  n.packets_unknown_payload_type = demux_->stats().unknown_payload_type;
  n.sources_refused = sources_->counters().sources_refused;
  n.sources_active = sources_->active().size();
  n.sources_on_probation = sources_->on_probation();
  n.probation_dropped = sources_->counters().probation_dropped;
  n.probation_evicted = sources_->counters().probation_evicted;
  n.sources_refused_per_host = sources_->counters().host_limit_refused;
  n.rtcp_packets = demux_->stats().rtcp_packets;
  n.rtcp_malformed = demux_->stats().rtcp_malformed;
  n.sender_reports = demux_->stats().sender_reports;
  n.receiver_reports_sent = receiver_reports_sent_;
  n.rtcp_foreign = demux_->stats().rtcp_foreign;
  n.ssrc_collisions = demux_->stats().ssrc_collisions;
  n.sap_sessions = sap_dir_ ? sap_dir_->sessions().size() : 0;
  n.sap_packets = sap_packets_;
  n.sap_invalid = sap_invalid_;
  n.sap_streams_refused = sap_streams_refused_;
  n.packets_not_allowed = demux_->stats().not_allowed;
  n.telephone_event_packets = demux_->stats().telephone_event_packets;
  n.telephone_events = demux_->stats().telephone_events;
  n.byes = demux_->stats().byes;
  n.callbacks = pos.callbacks;
  n.xruns = mixer_->xruns();
  n.samples_clipped = mixer_->samples_clipped();
  const SourceTable::Totals t = sources_->totals();
  n.sources_total = t.sources;
  n.packets_received = t.packets_received;
  n.packets_lost = t.packets_lost;
  n.packets_late = t.packets_late;
  n.packets_duplicate = t.packets_duplicate;
  n.underruns = t.underruns;
  n.underrun_frames = t.underrun_frames;
  n.concealed_s = t.concealed_s;
  n.mixer_refused = mixer_->refused();
  n.mixer_commands_deferred = mixer_->commands_deferred();
  n.cpu_load = backend_->cpu_load();
  add_callback_times(n, backend_->callback_times());
  n.http_requests = http_ ? http_->requests() : 0;
  n.http_refused = http_ ? http_->refused() : 0;
  n.http_forbidden = http_ ? http_->forbidden() : 0;
  n.http_evicted = http_ ? http_->evicted() : 0;
  n.events = events_.written();
  n.sync = cfg_.sync_absolute ? "absolute" : cfg_.sync_rtcp ? "rtcp" : "none";
  n.playout_delay_ms =
      cfg_.sync_absolute ? static_cast<double>(cfg_.playout_delay.count()) / 1e6 : 0.0;
  n.wall_clock_synced = wall_.sync_state().synced;
  n.wall_clock_maxerror_ms = wall_.sync_state().maxerror_ms;
  n.wall_clock_esterror_ms = wall_.sync_state().esterror_ms;
  n.wall_clock_steps = wall_.steps();
  n.sample_rate = clock_.rate();
  n.device_clock_jumps = clock_.jumps();
  n.device_skew_ppm = clock_.skew() * 1e6;  // device clock vs monotonic clock (DeviceClock)
  n.device = backend_->describe();
  n.device_state = suspended_ ? "suspended" : to_string(device_.state());
  n.device_up = device_.up();  // a suspended device is not lost
  n.device_suspensions = suspensions_;
  n.device_reopens = device_reopens_;
  n.device_reopen_failures = device_reopen_failures_;
  n.output_latency_ms =
      static_cast<double>(clock_.output_latency_frames()) * 1000.0 / clock_.rate();
  n.pa_output_latency_ms = backend_->output_latency() * 1000.0;
  n.render_lead_ms = static_cast<double>(lead_frames_) * 1000.0 / clock_.rate();
  if (lateness_count_ > 0) {
    const std::size_t k = std::min<std::size_t>(lateness_count_, kLatenessWindow);
    std::vector<float> v(lateness_.begin(), lateness_.begin() + static_cast<std::ptrdiff_t>(k));
    const auto at = static_cast<std::ptrdiff_t>(std::min<std::size_t>(k - 1, k * 999 / 1000));
    std::nth_element(v.begin(), v.begin() + at, v.end());
    n.loop_lateness_p999_ms = v[static_cast<std::size_t>(at)];
    n.loop_lateness_max_ms = *std::max_element(v.begin(), v.end());
  }
  n.loop_wakeups = render_wakes_;
  return n;
}

std::vector<SourceReport> Node::source_reports(bool with_departed) const {
  return sources_->reports(with_departed);
}

void Node::write_json() {
  const nlohmann::json j = stats_json(snapshot(), source_reports(true));
  // Readers never see half a file; a failure is said once until a write succeeds again.
  const std::string error = write_file_atomically(cfg_.stats_json, j.dump(2) + "\n");
  if (!error.empty() && !stats_json_failing_)
    std::cerr << "rtpnode: --stats-json: " << error << "\n";
  stats_json_failing_ = !error.empty();
}

void Node::write_report() {
  // One stream's figures and quality. loss_percent: lost and discarded-late packets over those
  // expected (the network's loss). The E-model takes the residual loss the listener hears: less
  // the lost packets rebuilt from the next packet's redundancy (RFC 2198 blocks, Opus FEC).
  auto stream_json = [](const SourceReport& r) {
    const SourceStats& s = r.stats;
    const double expected = static_cast<double>(s.packets_received) +
                            static_cast<double>(std::max<std::int64_t>(0, s.packets_lost));
    const double missing = static_cast<double>(std::max<std::int64_t>(0, s.packets_lost)) +
                           static_cast<double>(s.packets_late);
    const double loss_pct = expected > 0 ? 100.0 * missing / expected : 0.0;
    const double residual_pct =
        expected > 0
            ? 100.0 * std::max(0.0, missing - static_cast<double>(s.fec_recovered)) / expected
            : 0.0;
    std::string error;
    const auto format = parse_payload_format(s.payload, error);
    const CodecImpairment codec =
        format ? codec_impairment(*format) : CodecImpairment{0, 25.1, "unknown codec"};
    const EModelResult q = e_model(codec, residual_pct, 1.0, s.arrival_to_dac_ms);
    char ssrc[11];
    std::snprintf(ssrc, sizeof ssrc, "0x%08x", s.ssrc);
    return nlohmann::json{
        {"ssrc", ssrc},
        {"source", s.remote},
        {"port", s.port},
        {"payload", s.payload},
        {"state", r.state},
        {"packets", s.packets_received},
        {"lost", s.packets_lost},
        {"late", s.packets_late},
        {"duplicates", s.packets_duplicate},
        {"reordered", s.packets_reordered},
        {"loss_percent", loss_pct},
        {"fec_recovered", s.fec_recovered},
        {"residual_loss_percent", residual_pct},
        {"jitter_max_ms", s.jitter_max_ms},
        {"jitter_mean_ms", s.jitter_mean_ms},
        {"max_gap_ms", s.max_gap_ms},
        {"concealed_ms",
         s.audio_rate ? 1000.0 * static_cast<double>(s.frames_concealed) / s.audio_rate : 0.0},
        {"receiver_delay_ms", s.arrival_to_dac_ms},
        {"r_factor", q.r},
        {"mos", q.mos},
        {"ie_eff", q.ie_eff},
        {"impairment_source", codec.source}};
  };
  nlohmann::json calls = nlohmann::json::array(), loose = nlohmann::json::array();
  std::map<std::size_t, nlohmann::json> by_call;
  const CallDiscovery* discovery = replay_ ? replay_->discovery() : nullptr;
  auto capture_s = [&](std::int64_t ns) { return ns ? static_cast<double>(ns) / 1e9 : 0.0; };
  if (discovery)
    for (std::size_t i = 0; i < discovery->calls().size(); ++i) {
      const DiscoveredCall& c = discovery->calls()[i];
      auto digits = call_digits_.find(i);
      by_call[i] = {{"call_id", c.id},
                    {"sip", c.sip},
                    {"from", c.from},
                    {"to", c.to},
                    {"start", capture_s(c.start_ns)},
                    {"end", capture_s(c.end_ns)},
                    {"digits", digits == call_digits_.end() ? "" : digits->second},
                    {"caller", nlohmann::json::array()},
                    {"callee", nlohmann::json::array()}};
    }
  for (const SourceReport& r : source_reports(true)) {
    const nlohmann::json j = stream_json(r);
    bool placed = false;
    for (const auto& [listen, call_side] : listen_calls_)
      if (cfg_.listens[listen].port == r.stats.port) {
        by_call[call_side.first][call_side.second == 0 ? "caller" : "callee"].push_back(j);
        placed = true;
        break;
      }
    if (!placed) loose.push_back(j);
  }
  for (auto& [i, c] : by_call) calls.push_back(std::move(c));
  nlohmann::json doc{{"calls", calls},
                     {"streams", loose},
                     {"e_model",
                      "ITU-T G.107 with G.113 App. I impairments; delay = receiver_delay_ms "
                      "(network delay unknown to a receiver); loss = residual_loss_percent (lost "
                      "and late less those rebuilt from redundancy), random (BurstR 1)"}};
  if (replay_) {
    const CaptureStats& c = replay_->capture_stats();
    doc["capture"] = {{"file", cfg_.pcap},
                      {"interface", cfg_.capture},
                      {"kernel_drops", replay_->kernel_drops()},
                      {"records", c.frames},
                      {"udp", c.udp},
                      {"sip_messages", replay_->stats().sip},
                      {"sip_over_tcp", replay_->tcp_stats().messages},
                      {"tcp_holes", replay_->tcp_stats().gaps},
                      {"truncated", c.truncated},
                      {"malformed", c.malformed},
                      {"error", replay_->error()}};
  }
  const std::string error = write_file_atomically(cfg_.report, doc.dump(2) + "\n");
  if (!error.empty()) std::cerr << "rtpnode: --report: " << error << "\n";
}

void Node::report(bool final) {
  if (!cfg_.stats_json.empty()) write_json();
  if (cfg_.quiet && !final) return;
  std::cerr << stats_line(snapshot(), source_reports(false), final) << "\n";
}

void Node::event(const char* name, const nlohmann::json& fields) {
  events_.event(name, fields, now_ns());
}

void Node::schedule_receiver_reports() {
  std::size_t senders = 0;
  for (const Source* s : sources_->active()) senders += s->params().raw ? 0 : 1;
  const double interval = rtcp_->next_interval_s(senders, cfg_.rtcp_min_interval, now_ns());
  uv_timer_start(
      &rr_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->send_receiver_reports(); },
      static_cast<std::uint64_t>(std::max(1.0, interval * 1000.0)), 0);
}

void Node::send_receiver_reports() {
  const mono_ns_t now = now_ns();
  if (!udp_) return;
  for (std::size_t li = 0; li < cfg_.listens.size(); ++li) {
    const ListenSpec& spec = cfg_.listens[li];
    if (spec.raw) continue;
    std::vector<ReportTarget> targets;
    for (Source* s : sources_->active())
      if (s->params().port == spec.port && !s->params().raw && s->has_sequence())
        targets.push_back({s->take_report_block(), source_key(spec.port, s->params().ssrc),
                           s->params().remote_addr});
    const OutgoingReports out = rtcp_->build(targets, now);
    for (const auto& pkt : out.packets)
      for (const sockaddr_storage& d : out.destinations)
        if (udp_->send_rtcp(li, pkt, reinterpret_cast<const sockaddr*>(&d))) {
          ++receiver_reports_sent_;
          rtcp_->on_sent(pkt.size());
        }
  }
  rtcp_->on_reported(now);
  schedule_receiver_reports();
}

HttpResponse Node::on_http(const HttpRequest& req) {
  const ControlContext ctx{[this] { return snapshot(); },
                           [this](bool d) { return source_reports(d); },
                           sources_->active(),
                           clock_,
                           backend_->channels(),
                           events_,
                           now_ns()};
  return handle_http(req, ctx);
}

}  // namespace rtpnode
