// rtpnode: receives RTP/UDP audio, buffers, decodes and conceals it, and plays every stream
// mixed through PortAudio. See README.md for flags and examples.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "node/audio_backend.hpp"
#include "node/config.hpp"
#include "node/config_file.hpp"
#include "node/journal_log.hpp"
#include "node/node.hpp"
#include "node/stats_model.hpp"
#include "rtp/ortp_log.hpp"
#include <nlohmann/json.hpp>

using namespace rtpnode;

namespace {

/// --raw applies to the --listen given just before it; CLI11 does not keep that order, so it is
/// read from argv. Returns, per --raw in order, the index of its --listen (-1: none before it).
std::vector<int> raw_owners(int argc, char** argv) {
  std::vector<int> owners;
  int listens = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--listen" || a.rfind("--listen=", 0) == 0) ++listens;
    if (a == "--raw" || a.rfind("--raw=", 0) == 0) owners.push_back(listens - 1);
  }
  return owners;
}

/// Options that are actions or belong to the command line only, never config keys.
bool command_line_only(const std::string& name) {
  return name == "help" || name == "config" || name == "print-config" || name == "list-devices" ||
         name == "stats-doc" || name == "stats-schema";
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// Fills every option the command line left unset from the config file's entries (the option's
/// own conversion and checks run). `raw` in the file is parallel to `listen` ("" = RTP): its
/// owners are returned in `file_raws`. Returns "" or one error line naming file, line and key.
std::string apply_config_file(CLI::App& app, const std::string& path,
                              std::vector<std::pair<int, std::string>>& file_raws,
                              bool& raws_from_file) {
  std::string err;
  const auto entries = read_config_file(path, err);
  if (!entries) return err;
  const bool listen_on_command_line = app.get_option("--listen")->count() > 0;
  for (const ConfigFileEntry& e : *entries) {
    const std::string at = path + ":" + std::to_string(e.line) + ": " + e.key + ": ";
    CLI::Option* opt = command_line_only(e.key) ? nullptr : app.get_option_no_throw("--" + e.key);
    if (opt == nullptr)
      return path + ":" + std::to_string(e.line) + ": unknown key '" + e.key +
             "' (keys are rtpnode's flags without --, see --help)";
    if (opt->count() > 0) continue;  // the command line overrides the file
    if (e.key == "raw") {
      // Parallel to the file's listen: dropped when the command line replaced listen.
      if (listen_on_command_line) continue;
      raws_from_file = true;
      for (std::size_t i = 0; i < e.values.size(); ++i)
        if (!e.values[i].empty()) file_raws.emplace_back(static_cast<int>(i), e.values[i]);
      continue;
    }
    if (e.values.size() > 1 && opt->get_expected_max() <= 1)
      return at + "takes one value, not an array";
    try {
      for (const std::string& v : e.values) opt->add_result(v);
      opt->run_callback();
    } catch (const CLI::Error& ex) {
      return at + ex.what();
    }
  }
  return "";
}

/// The effective configuration, key by key, as a --config file has it: every key that is set
/// (on the command line or in a file) with its TOML value, then every other key with its default
/// (`set` false).
struct EffectiveKey {
  std::string key, toml;
  bool set = false;
};
std::vector<EffectiveKey> effective_keys(const CLI::App& app, const NodeFlags& flags) {
  std::vector<EffectiveKey> keys, unset;
  for (const CLI::Option* opt : app.get_options()) {
    const std::string name = opt->get_single_name();
    if (name.empty() || command_line_only(name) || name == "raw") continue;
    const bool repeatable = opt->get_expected_max() > 1;
    if (opt->count() == 0) {
      const std::string d = opt->get_default_str();
      unset.push_back({name, d.empty() ? "(none)" : toml_string(d), false});
      continue;
    }
    const auto& results = opt->results();
    std::string v = repeatable ? "[" : "";
    for (std::size_t i = 0; i < results.size(); ++i) v += (i ? ", " : "") + toml_string(results[i]);
    keys.push_back({name, v + (repeatable ? "]" : ""), true});
  }
  if (!flags.raws.empty()) {
    std::vector<std::string> raw(flags.listens.size());
    for (const auto& [owner, text] : flags.raws)
      if (owner >= 0 && static_cast<std::size_t>(owner) < raw.size())
        raw[static_cast<std::size_t>(owner)] = text;
    std::string v = "[";
    for (std::size_t i = 0; i < raw.size(); ++i) v += (i ? ", " : "") + toml_string(raw[i]);
    keys.push_back({"raw", v + "]  # parallel to listen: \"\" = RTP", true});
  }
  keys.insert(keys.end(), unset.begin(), unset.end());
  return keys;
}

void print_config(const std::vector<EffectiveKey>& keys) {
  std::cout << "# rtpnode --config file (TOML): keys are the flags without --; the command line\n"
               "# overrides them.\n";
  for (const EffectiveKey& k : keys)
    std::cout << (k.set ? "" : "# ") << k.key << " = " << k.toml << "\n";
}

CLI::Validator duration_validator() {
  return CLI::Validator(
      [](std::string& s) {
        std::string err;
        return parse_duration(s, err) ? std::string() : err;
      },
      "DURATION");
}

/// What the command line (and --config) give: a checked configuration with its keys, an error
/// line, or (at startup) an exit code for the actions that end at once (--help, --list-devices,
/// --stats-doc, --stats-schema).
struct Loaded {
  std::optional<NodeConfig> config;
  std::vector<EffectiveKey> keys;
  std::string error;
  int exit_code = -1;
  bool print_config = false;
};

/// Parses argv (and the --config file) afresh. `startup` false (SIGHUP): errors are returned as
/// text, actions are not run.
Loaded load(int argc, char** argv, bool startup) {
  CLI::App app{"rtpnode: RTP/UDP audio receiver and player (PortAudio)"};
  NodeConfig cfg;  // fields bound directly; the rest is text in `flags` (defaults from NodeConfig)
  NodeFlags flags;
  std::vector<std::string> raws;
  bool list = false, stats_doc = false, stats_schema = false;
  auto& listens = flags.listens;
  auto& payloads = flags.payloads;
  auto& latency = flags.latency;
  auto& min_latency = flags.min_latency;
  auto& max_latency = flags.max_latency;
  auto& profile = flags.profile;
  auto& lead = flags.render_lead;
  auto& drift = flags.drift;
  auto& source_timeout = flags.source_timeout;
  auto& sync = flags.sync;
  auto& playout_delay = flags.playout_delay;
  auto& offsets = flags.offsets;
  auto& routes = flags.routes;
  auto& gains = flags.gains;
  auto& duration = flags.duration;
  auto& stats_interval = flags.stats_interval;
  auto& http = flags.http;
  auto& rtcp_rr = flags.rtcp_rr;
  auto& rtcp_min_interval = flags.rtcp_min_interval;

  app.add_option("--listen", listens,
                 "ADDR:PORT to receive on (repeatable; IPv4, [IPv6]; a multicast group is joined)")
      ->type_name("ADDR:PORT")
      ->allow_extra_args(false);
  app.add_option(
         "--payload", payloads,
         "Map a payload type: PT=CODEC/CLOCK_RATE[/CHANNELS][/ts=RTP_CLOCK][/red=BLOCK_PT], e.g. "
         "96=opus/48000/2; /red=0: RFC 2198 redundant audio whose PT 0 blocks are the codec "
         "(codecs: pcmu pcma g722 g729 amr l16 l24 opus telephone-event; static PTs 0 8 9 18 are "
         "preset)")
      ->type_name("PT=FMT")
      ->allow_extra_args(false);
  app.add_option("--sdp", flags.sdps,
                 "Receive the audio streams an SDP file describes (repeatable; RFC 8866): its "
                 "connection address and port (multicast joined, source-filter followed), rtpmap "
                 "and fmtp; --payload overrides its mappings")
      ->type_name("FILE")
      ->allow_extra_args(false);
  app.add_option("--sap", flags.saps,
                 "Receive the sessions SAP announces (RFC 2974; repeatable): on ADDR:PORT, or "
                 "without one on 224.2.127.254, 224.0.0.56 and 239.255.255.255 port 9875; each "
                 "session's streams as --sdp would, until deleted or silent for 10 announcement "
                 "intervals")
      ->type_name("[ADDR:PORT]")
      ->expected(0, 1)
      ->default_str("default")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->allow_extra_args(false);
  app.add_option("--sap-filter", cfg.sap_filter,
                 "With --sap: only sessions whose name (SDP s=) matches this glob, e.g. 'Studio*'")
      ->type_name("GLOB");
  app.add_option("--raw", raws,
                 "The preceding --listen carries headerless PCM: FORMAT/RATE/CHANNELS "
                 "(FORMAT s16le, s16be, s24le or f32le; 1..64 channels), e.g. s16le/8000/1")
      ->type_name("FORMAT")
      ->allow_extra_args(false);
  app.add_option("--latency", latency,
                 "Jitter-buffer playout delay: auto (adaptive) or a fixed duration (unit required)")
      ->capture_default_str();
  app.add_option("--min-latency", min_latency, "Adaptive: lowest target delay")
      ->check(duration_validator())
      ->capture_default_str();
  app.add_option("--max-latency", max_latency, "Adaptive: highest target delay and expansion")
      ->check(duration_validator())
      ->capture_default_str();
  app.add_option("--profile", profile, "Adaptive: speech (1% late-loss budget) or music (0.1%)")
      ->check(CLI::IsMember({"speech", "music"}))
      ->capture_default_str();
  app.add_option("--jitter-quantile", cfg.jitter_quantile,
                 "Adaptive: jitter quantile to cover (overrides --profile)")
      ->check(CLI::Range(0.5, 0.99999));
  app.add_option("--render-lead", lead,
                 "How far ahead of the device the loop renders; 0ms = one period + 10 ms")
      ->check(duration_validator())
      ->capture_default_str();
  app.add_option("--drift", drift,
                 "Clock drift compensation: on, or off when senders share the device's clock (PTP)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--rt-priority", cfg.rt_priority,
                 "Real-time scheduling: lock memory, loop thread at SCHED_FIFO N-10, a real-time "
                 "audio thread on ALSA (JACK has its own); 0 = off. Not permitted: a warning")
      ->check(CLI::Range(0, 99))
      ->capture_default_str();
  app.add_option("--device-retry", flags.device_retry,
                 "A lost device (JACK server gone, DAC unplugged) is reopened with backoff (on), "
                 "or rtpnode exits with status 3 (off)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--idle-suspend", flags.idle_suspend,
                 "Release the device after this long without a source and reopen it at the next "
                 "source's first packet; 0s = never")
      ->check(duration_validator())
      ->capture_default_str();
  app.add_option("--resampler-quality", cfg.resampler_quality, "speexdsp resampler quality 0..10")
      ->check(CLI::Range(0, 10))
      ->capture_default_str();
  app.add_option("--resampler-bypass", flags.resampler_bypass,
                 "Sources at the device's rate skip the resampler while their speed is within "
                 "500 ppm of 1 (drift is followed by one-frame slips); off: always resample")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--source-timeout", source_timeout,
                 "Remove a source after this long without packets; 0s = never")
      ->check(duration_validator())
      ->capture_default_str();
  app.add_option("--max-sources", cfg.max_sources, "Streams mixed at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--max-sources-per-host", cfg.max_sources_per_host,
                 "Sources whose RTP comes from one IP address other than loopback; 0 = no limit "
                 "(default: half of --max-sources; no limit with --pcap)")
      ->check(CLI::Range(0, 1024));
  app.add_option("--sync", sync,
                 "rtcp: place sources on their senders' NTP timeline from RTCP Sender Reports; "
                 "absolute: play what was captured at NTP time T at this node's wall-clock time "
                 "T + --playout-delay (nodes with synchronised clocks play in step); "
                 "none: ignore SRs")
      ->check(CLI::IsMember({"rtcp", "absolute", "none"}))
      ->capture_default_str();
  app.add_option("--playout-delay", playout_delay,
                 "--sync absolute: sender capture instant (NTP) to DAC, 10ms..5s; must cover the "
                 "network path and its jitter")
      ->check(duration_validator())
      ->capture_default_str();
  app.add_option(
         "--offset", offsets,
         "Shift sources on the timeline: SEL=+12.5ms (SEL: port:N or ssrc:0xHEX; repeatable)")
      ->type_name("SEL=DUR")
      ->allow_extra_args(false);
  app.add_option("--route", routes,
                 "Device channels of sources: SEL=L|R|LR|1,2,... (1-based; repeatable)")
      ->type_name("SEL=CH")
      ->allow_extra_args(false);
  app.add_option("--gain", gains, "Gain of sources: SEL=-6dB (repeatable)")
      ->type_name("SEL=DB")
      ->allow_extra_args(false);
  app.add_option(
      "--host-api", cfg.host_api,
      "Audio host API: jack (libjack directly), or a PortAudio host API (substring, e.g. "
      "ALSA); default: PortAudio's default");
  app.add_option("--device", cfg.device,
                 "Output device: index or name substring (see --list-devices); with JACK, the "
                 "client whose inputs to connect to (default: the physical playback ports)");
  app.add_option("--rate", cfg.rate, "Device sample rate in Hz; default: the device's default")
      ->check(CLI::Range(8000.0, 384000.0));
  app.add_option("--channels", cfg.channels, "Device output channels")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--period", cfg.period, "Frames per callback; default: the host API's choice")
      ->check(CLI::Range(16, 8192));
  app.add_option("--client-name", cfg.client_name, "JACK client name (ports: NAME:out_0 ...)")
      ->capture_default_str();
  app.add_option(
         "--output", cfg.output,
         "Render the mix to FILE.wav, .rf64 or .flac instead of a device, paced in real time "
         "(--rate default 48000, --period default 256); a --pcap replay into it runs as fast as "
         "the CPU allows")
      ->type_name("FILE");
  app.add_option(
         "--pcap", cfg.pcap,
         "Play a pcap/pcapng capture (- = stdin) at its capture times instead of receiving: "
         "the datagrams to the --listen ports, or without --listen the calls found by "
         "SIP/SDP or RTP heuristics (caller left, callee right); stops at its end")
      ->type_name("FILE");
  app.add_flag("--real-time", cfg.real_time,
               "With --pcap and --output: replay at the capture's pace instead of as fast as the "
               "CPU allows (the default into a file)");
  app.add_option("--capture", cfg.capture,
                 "Tap this interface live (needs CAP_NET_RAW) instead of receiving: the datagrams "
                 "to the --listen ports, or without --listen the calls found (as --pcap)")
      ->type_name("IFACE");
  app.add_option("--capture-filter", cfg.capture_filter,
                 "BPF filter for --capture (tcpdump syntax), e.g. \"udp\"")
      ->type_name("BPF");
  app.add_option("--report", cfg.report,
                 "At exit, write a JSON quality report per call and stream: loss, late, "
                 "duplicates, jitter, gaps, DTMF digits, E-model R and MOS")
      ->type_name("FILE");
  app.add_option("--record", cfg.record,
                 "Write one stereo WAV per call found in --pcap (caller left, callee right) into "
                 "this directory")
      ->type_name("DIR");
  app.add_option("--select", cfg.select,
                 "With --pcap or --capture: play only this call (its Call-ID, or rtp:... for a "
                 "call found by RTP heuristics) to the device; the others are still recorded and "
                 "reported. all: every call")
      ->type_name("CALL-ID|all")
      ->capture_default_str();
  app.add_option("--output-format", cfg.output_format,
                 "Sample format of --output: s16, s24 or f32 (f32: not .flac)")
      ->check(CLI::IsMember({"s16", "s24", "f32"}))
      ->capture_default_str();
  app.add_flag("--list-devices", list, "List output devices and exit");
  app.add_option("--duration", duration,
                 "Stop after this long (e.g. 10s); default: run until SIGINT/SIGTERM")
      ->check(duration_validator());
  app.add_option("--stats-interval", stats_interval,
                 "Period of the stats line on stderr and of --stats-json; 0s = off")
      ->check(duration_validator())
      ->capture_default_str();
  app.add_option("--stats-json", cfg.stats_json,
                 "Write statistics as JSON to FILE each interval and at exit");
  app.add_flag("--quiet", cfg.quiet, "No periodic stats line (the final one is still printed)");
  app.add_option(
         "--http", http,
         "Serve GET /metrics (Prometheus), /stats (JSON), /sources and control on ADDR:PORT, "
         "e.g. 127.0.0.1:8080")
      ->type_name("ADDR:PORT");
  app.add_flag("--http-allow-remote", cfg.http_allow_remote,
               "Answer HTTP clients that are not on this host (default: loopback only)");
  app.add_option(
      "--name", cfg.name,
      "This node's name for controllers: the mDNS service name (default: the host name)");
  auto& mdns = flags.mdns;
  app.add_option("--mdns", mdns,
                 "With --http: advertise it over mDNS/DNS-SD as _rtpnode._tcp (avahi-daemon)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  auto& http_token_file = flags.http_token_file;
  auto& allows = flags.allows;
  app.add_option("--allow", allows,
                 "Accept RTP/RTCP only from this address block, e.g. 192.168.1.0/24 or fd00::/8 "
                 "(repeatable; default: from anywhere)")
      ->type_name("CIDR");
  app.add_option("--http-token-file", http_token_file,
                 "Control (POST) requests need 'Authorization: Bearer TOKEN', TOKEN being this "
                 "file's first line");
  app.add_option(
      "--event-log", cfg.event_log,
      "Append events (joins, leaves, underruns, bursts, xruns, control) as JSON Lines to FILE");
  app.add_option("--rtcp-rr", rtcp_rr, "Send RTCP Receiver Reports to senders (RFC 3550)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--rtcp-min-interval", rtcp_min_interval,
                 "Minimum RTCP report interval (RFC 3550 6.2 Tmin)")
      ->check(duration_validator())
      ->capture_default_str();
  std::string config_path;
  bool print_config_and_exit = false;
  app.add_option("--config", config_path,
                 "Read flags from this TOML file: keys are the flag names without --, e.g. "
                 "listen = [\"0.0.0.0:5004\"]; flags on the command line override it")
      ->type_name("FILE");
  app.add_flag("--print-config", print_config_and_exit,
               "Print the effective configuration as a --config file and exit");
  app.add_flag("--stats-doc", stats_doc, "Print the statistics reference (Markdown) and exit");
  app.add_flag("--stats-schema", stats_schema,
               "Print the JSON Schema of /stats and --stats-json and exit");

  Loaded out;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (!startup) {
      out.error = e.what();
      return out;
    }
    out.exit_code = app.exit(e) == 0 ? 0 : 2;  // --help: 0; any usage error: 2
    return out;
  }
  if (startup && list) {
    PortAudioBackend::list_devices(std::cout);
    out.exit_code = 0;
    return out;
  }
  if (startup && stats_doc) {
    std::cout << stats_doc_markdown();
    out.exit_code = 0;
    return out;
  }
  if (startup && stats_schema) {
    std::cout << stats_json_schema().dump(2) << "\n";
    out.exit_code = 0;
    return out;
  }

  std::vector<std::pair<int, std::string>> file_raws;
  bool raws_from_file = false;
  if (!config_path.empty()) {
    out.error = apply_config_file(app, config_path, file_raws, raws_from_file);
    if (!out.error.empty()) return out;
  }
  if (raws_from_file) {
    flags.raws = file_raws;
  } else {
    const auto owners = raw_owners(argc, argv);
    for (std::size_t i = 0; i < raws.size(); ++i)
      flags.raws.emplace_back(i < owners.size() ? owners[i] : -1, raws[i]);
  }
  out.config = make_node_config(flags, std::move(cfg), out.error);
  if (!out.config) return out;
  out.keys = effective_keys(app, flags);
  out.print_config = print_config_and_exit;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Under systemd with stderr to the journal: a priority on every line.
  static std::optional<JournalLineBuf> journal;
  if (stderr_is_journal()) {
    journal.emplace(std::cerr.rdbuf());
    std::cerr.rdbuf(&*journal);
  }
  rtpnode::ortp_log_route();  // oRTP parses RTCP from the network: its repeated warnings are
                              // counted
  Loaded loaded = load(argc, argv, true);
  if (loaded.exit_code >= 0) return loaded.exit_code;
  if (!loaded.config) {
    std::cerr << "rtpnode: " << loaded.error << "\n";
    return 2;
  }
  if (loaded.print_config) {  // a configuration that passed every check
    print_config(loaded.keys);
    return 0;
  }
  try {
    Node node(std::move(*loaded.config));
    // SIGHUP: the command line and --config again; Node applies what can change live.
    std::vector<EffectiveKey> current = loaded.keys;
    node.set_reloader([argc, argv, current](std::string& error) mutable {
      Loaded again = load(argc, argv, false);
      Node::Reload r;
      if (!again.config) {
        error = again.error;
        return r;
      }
      std::map<std::string, std::string> before;
      for (const EffectiveKey& k : current) before[k.key] = k.toml;
      for (const EffectiveKey& k : again.keys)
        if (before[k.key] != k.toml) r.changed.push_back(k.key);
      current = again.keys;
      r.config = std::move(again.config);
      return r;
    });
    const int rc = node.run();
    if (node.device_abandoned()) {
      // PortAudio is stuck on a dead device in another thread and may still hold the mixer:
      // end here, without destructors (the final stats are already written).
      std::cerr.flush();
      std::fflush(nullptr);
      std::_Exit(rc);
    }
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "rtpnode: " << e.what() << "\n";
    return 1;
  }
}
