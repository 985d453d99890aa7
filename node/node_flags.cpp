// The command line's text to a checked NodeConfig: NodeFlags, make_node_config and
// NodeConfig::validate (config.hpp).
#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "node/config.hpp"
#include "rtp/sap.hpp"

namespace rtpnode {

NodeFlags::NodeFlags() {
  const NodeConfig d;
  latency = d.latency_auto ? "auto" : format_duration(d.latency);
  min_latency = format_duration(d.min_latency);
  max_latency = format_duration(d.max_latency);
  profile = d.music ? "music" : "speech";
  render_lead = format_duration(d.render_lead);
  drift = d.drift_compensation ? "on" : "off";
  source_timeout = format_duration(d.source_timeout);
  sync = d.sync_absolute ? "absolute" : d.sync_rtcp ? "rtcp" : "none";
  playout_delay = format_duration(d.playout_delay);
  mdns = d.mdns ? "on" : "off";
  stats_interval = format_duration(d.stats_interval);
  rtcp_rr = d.rtcp_rr ? "on" : "off";
  device_retry = d.device_retry ? "on" : "off";
  resampler_bypass = d.resampler_bypass ? "on" : "off";
  idle_suspend = format_duration(d.idle_suspend);
  rtcp_min_interval = format_duration(d.rtcp_min_interval);
}

namespace {

/// A duration flag: the value, or nullopt with `error` = "FLAG: why".
std::optional<nanoseconds> duration_flag(const std::string& flag, const std::string& text,
                                         std::string& error) {
  auto d = parse_duration(text, error);
  if (!d) error = flag + ": " + error;
  return d;
}

std::optional<bool> on_off(const std::string& flag, const std::string& text, const char* on,
                           const char* off, std::string& error) {
  if (text == on) return true;
  if (text == off) return false;
  error = flag + " " + text + ": expected " + on + " or " + off;
  return std::nullopt;
}

}  // namespace

std::optional<NodeConfig> make_node_config(const NodeFlags& f, NodeConfig cfg, std::string& error) {
  std::string err;
  auto fail = [&](const std::string& msg) -> std::optional<NodeConfig> {
    error = msg;
    return std::nullopt;
  };
  cfg.listens.clear();
  for (const auto& l : f.listens) {
    auto spec = parse_listen(l, err);
    if (!spec) return fail("--listen: " + err);
    cfg.listens.push_back(*spec);
  }
  for (const auto& [owner, text] : f.raws) {
    if (owner < 0 || static_cast<std::size_t>(owner) >= cfg.listens.size())
      return fail("--raw " + text + " must follow the --listen it applies to");
    auto fmt = parse_raw_format(text, err);
    if (!fmt) return fail("--raw: " + err);
    cfg.listens[static_cast<std::size_t>(owner)].raw = *fmt;
  }
  for (const auto& p : f.payloads)
    if (!cfg.payloads.apply(p, err)) return fail("--payload: " + err);
  cfg.payload_flags = f.payloads;
  cfg.sap.clear();
  for (const auto& a : f.saps) {
    if (a == "default" || a.empty()) {
      for (const char* g : kSapGroups) {
        ListenSpec group;
        group.address = g;
        group.port = kSapPort;
        cfg.sap.push_back(std::move(group));
      }
      continue;
    }
    auto spec = parse_listen(a, err);
    if (!spec) return fail("--sap: " + err);
    cfg.sap.push_back(*spec);
  }
  for (const auto& path : f.sdps) {
    auto specs = listens_from_sdp(path, f.payloads, err);
    if (!specs) return fail("--sdp " + err);
    cfg.listens.insert(cfg.listens.end(), specs->begin(), specs->end());
  }
  for (const auto& o : f.offsets) {
    auto r = parse_offset_rule(o, err);
    if (!r) return fail("--offset: " + err);
    cfg.offsets.push_back(*r);
  }
  for (const auto& o : f.routes) {
    auto r = parse_route_rule(o, cfg.channels, err);
    if (!r) return fail("--route: " + err);
    cfg.routes.push_back(*r);
  }
  for (const auto& o : f.gains) {
    auto r = parse_gain_rule(o, err);
    if (!r) return fail("--gain: " + err);
    cfg.gains.push_back(*r);
  }
  auto drift = on_off("--drift", f.drift, "on", "off", err);
  const bool absolute = f.sync == "absolute";
  auto sync = absolute ? std::optional<bool>(true) : on_off("--sync", f.sync, "rtcp", "none", err);
  if (!sync) err += " or absolute";
  auto rr = on_off("--rtcp-rr", f.rtcp_rr, "on", "off", err);
  auto music = on_off("--profile", f.profile, "music", "speech", err);
  auto retry = on_off("--device-retry", f.device_retry, "on", "off", err);
  auto bypass = on_off("--resampler-bypass", f.resampler_bypass, "on", "off", err);
  auto mdns = on_off("--mdns", f.mdns, "on", "off", err);
  if (!drift || !sync || !rr || !music || !retry || !bypass || !mdns) return fail(err);
  cfg.mdns = *mdns;
  cfg.device_retry = *retry;
  cfg.resampler_bypass = *bypass;
  cfg.drift_compensation = *drift;
  cfg.sync_rtcp = *sync;
  cfg.sync_absolute = absolute;
  cfg.rtcp_rr = *rr;
  cfg.music = *music;
  cfg.latency_auto = f.latency == "auto";
  if (!cfg.latency_auto) {
    auto fixed = parse_duration(f.latency, err);
    if (!fixed) return fail("--latency: " + err + " (or auto)");
    cfg.latency = *fixed;
  }
  struct DurationField {
    const char* flag;
    const std::string& text;
    nanoseconds& out;
  };
  for (const DurationField& d :
       {DurationField{"--min-latency", f.min_latency, cfg.min_latency},
        DurationField{"--max-latency", f.max_latency, cfg.max_latency},
        DurationField{"--render-lead", f.render_lead, cfg.render_lead},
        DurationField{"--playout-delay", f.playout_delay, cfg.playout_delay},
        DurationField{"--stats-interval", f.stats_interval, cfg.stats_interval},
        DurationField{"--source-timeout", f.source_timeout, cfg.source_timeout},
        DurationField{"--rtcp-min-interval", f.rtcp_min_interval, cfg.rtcp_min_interval},
        DurationField{"--idle-suspend", f.idle_suspend, cfg.idle_suspend}}) {
    auto v = duration_flag(d.flag, d.text, err);
    if (!v) return fail(err);
    d.out = *v;
  }
  if (!f.duration.empty()) {
    auto v = duration_flag("--duration", f.duration, err);
    if (!v) return fail(err);
    cfg.duration = *v;
  }
  if (!f.http.empty()) {
    auto spec = parse_listen(f.http, err);
    if (!spec) return fail("--http: " + err);
    cfg.http = *spec;
  }
  for (const auto& a : f.allows) {
    auto c = parse_cidr(a, err);
    if (!c) return fail(err);
    cfg.allow.push_back(*c);
  }
  if (!f.http_token_file.empty()) {
    std::ifstream in(f.http_token_file);
    std::string line;
    if (!in || !std::getline(in, line))
      return fail("--http-token-file " + f.http_token_file + ": cannot read it");
    const auto first = line.find_first_not_of(" \t\r");
    const auto last = line.find_last_not_of(" \t\r");
    if (first == std::string::npos)
      return fail("--http-token-file " + f.http_token_file + ": the first line is empty");
    cfg.http_token = line.substr(first, last - first + 1);
  }
  if (std::string e = cfg.validate(); !e.empty()) return fail(e);
  return cfg;
}

std::string NodeConfig::validate() const {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  if (!pcap.empty() && !capture.empty()) return "--pcap and --capture exclude each other";
  if (!capture_filter.empty() && capture.empty()) return "--capture-filter needs --capture IFACE";
  if (listens.empty() && pcap.empty() && capture.empty() && sap.empty())
    return "nothing to receive: give at least one --listen ADDR:PORT (e.g. --listen 0.0.0.0:5004), "
           "--sdp FILE or --sap";
  if (!sap.empty() && (!pcap.empty() || !capture.empty()))
    return "--sap receives live announcements: not with --pcap or --capture";
  if (!sap_filter.empty() && sap.empty()) return "--sap-filter needs --sap";
  if (!latency_auto && latency > seconds(10))
    return "--latency " + format_duration(latency) + " is above the 10 s maximum";
  const bool any_raw =
      std::any_of(listens.begin(), listens.end(), [](const ListenSpec& l) { return l.raw; });
  if (max_latency > seconds(any_raw ? 60 : 10))
    return "--max-latency " + format_duration(max_latency) + " is above the " +
           (any_raw ? "60 s maximum"
                    : "10 s maximum (60 s when a --raw listen takes a byte stream)");
  if (min_latency > max_latency)
    return "--min-latency " + format_duration(min_latency) + " is above --max-latency " +
           format_duration(max_latency);
  // At most 5 s: the jitter buffer takes a packet more than 10 s ahead for a restart.
  if (playout_delay < milliseconds(10) || playout_delay > seconds(5))
    return "--playout-delay " + format_duration(playout_delay) + " is outside 10ms..5s";
  if (render_lead > seconds(1))
    return "--render-lead " + format_duration(render_lead) + " is above the 1 s maximum";
  if (idle_suspend > seconds(86400))
    return "--idle-suspend " + format_duration(idle_suspend) + " is above the 1 day maximum";
  if (rtcp_min_interval < milliseconds(100) || rtcp_min_interval > seconds(60))
    return "--rtcp-min-interval " + format_duration(rtcp_min_interval) + " is outside 100ms..60s";
  if (channels < 1 || channels > 64)
    return "--channels " + std::to_string(channels) + " is outside 1..64";
  if (max_sources < 1 || max_sources > 1024)
    return "--max-sources " + std::to_string(max_sources) + " is outside 1..1024";
  if (max_sources_per_host < -1 || max_sources_per_host > 1024)
    return "--max-sources-per-host " + std::to_string(max_sources_per_host) + " is outside 0..1024";
  auto check_port = [&](const SourceRule& r, const char* flag) -> std::string {
    if (r.selector.kind != SourceSelector::Kind::port) return {};
    for (const auto& l : listens)
      if (l.port == r.selector.value) return {};
    return std::string(flag) + " " + r.selector.text + ": no --listen has port " +
           std::to_string(r.selector.value);
  };
  for (const auto& r : offsets)
    if (auto e = check_port(r, "--offset"); !e.empty()) return e;
  for (const auto& r : gains)
    if (auto e = check_port(r, "--gain"); !e.empty()) return e;
  for (const auto& r : routes) {
    if (auto e = check_port(r, "--route"); !e.empty()) return e;
    for (int c : r.route)
      if (c >= channels)
        return "--route " + r.selector.text + " names device channel " + std::to_string(c + 1) +
               " but --channels is " + std::to_string(channels);
  }
  if (!http_token.empty() && !http) return "--http-token-file needs --http";
  if (select != "all" && ((pcap.empty() && capture.empty()) || !listens.empty()))
    return "--select chooses among the calls that --pcap or --capture finds: give --pcap FILE or "
           "--capture IFACE without --listen";
  if (select.empty()) return "--select: give a Call-ID, or all";
  if (!record.empty() && ((pcap.empty() && capture.empty()) || !listens.empty()))
    return "--record DIR writes the calls that --pcap or --capture finds: give --pcap FILE or "
           "--capture IFACE without --listen";
  if (real_time && (pcap.empty() || output.empty()))
    return "--real-time paces a --pcap replay into an --output file as a device would: give both "
           "(a replay to a device is always in real time)";
  if (offline() && sync_absolute)
    return "--sync absolute plays on this machine's wall clock, which an offline render of --pcap "
           "into --output does not follow: add --real-time";
  if (!output.empty()) {
    const auto dot = output.rfind('.');
    std::string ext = dot == std::string::npos ? "" : output.substr(dot + 1);
    for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ext != "wav" && ext != "rf64" && ext != "flac")
      return "--output " + output + ": the file name must end in .wav, .rf64 or .flac";
    if (output_format != "s16" && output_format != "s24" && output_format != "f32")
      return "--output-format " + output_format + ": expected s16, s24 or f32";
    if (output_format == "f32" && ext == "flac")
      return "--output-format f32 is not possible in FLAC (use s16 or s24, or .wav)";
    if (!host_api.empty() || !device.empty())
      return "--output renders to a file: --host-api and --device do not apply";
  }
  return {};
}

PlayoutConfig NodeConfig::playout() const {
  PlayoutConfig c;
  c.adaptive = latency_auto;
  c.drift_compensation = drift_compensation;
  if (!latency_auto) c.start_delay_ns = latency.count();
  c.min_delay_ns = min_latency.count();
  // Beyond 10 s, --max-latency only bounds what raw sources hold ahead (Source::on_raw).
  c.max_delay_ns = std::min<std::int64_t>(max_latency.count(), 10'000'000'000);
  const PlayoutProfile& prof = music ? kMusicProfile : kSpeechProfile;
  c.estimator.quantile = jitter_quantile > 0 ? jitter_quantile : prof.quantile;
  c.estimator.memory_ns = prof.memory_ns;
  c.max_speed_offset = prof.max_speed_offset;
  return c;
}

std::string NodeConfig::describe_latency() const {
  auto ms = [](nanoseconds d) {
    std::ostringstream o;
    o << std::chrono::duration<double, std::milli>(d).count();
    return o.str();
  };
  if (!latency_auto) return ms(latency) + " ms";
  return std::string("auto (") + (music ? "music" : "speech") + ", " + ms(min_latency) + "-" +
         ms(max_latency) + " ms)";
}

}  // namespace rtpnode
