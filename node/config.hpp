// rtpnode configuration: every knob with its unit, range and default in one place (--help shows
// the same defaults).
#pragma once

#include <sys/socket.h>

#include <algorithm>
#include <array>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "jitter/playout.hpp"
#include "rtp/media_clock.hpp"
#include "rtp/payload_format.hpp"

namespace rtpnode {

using std::chrono::nanoseconds;

/// One socket to receive on.
struct ListenSpec {
  std::string address;               ///< IPv4 or IPv6 literal; a multicast group joins the group
  std::uint16_t port = 0;            ///< 1..65535
  std::optional<PayloadFormat> raw;  ///< set: headerless PCM (no RTP header) in this format
  /// Set by call discovery (--pcap, node/call_discovery.hpp), never by flags: the payload types
  /// the call's SDP maps (over the static ones) instead of --payload's, and the device channels
  /// this side of the call plays on when no --route rule names its sources.
  std::shared_ptr<const PayloadMap> payloads;
  std::optional<std::vector<int>> route;
  /// Set by --sdp: RTCP's port when the SDP's a=rtcp moves it off port + 1 (RFC 3605).
  std::optional<std::uint16_t> rtcp_port;
  /// Set by --sdp (a=source-filter incl, RFC 4570): the only senders; a multicast group is then
  /// joined source-specifically (SSM, RFC 4607) for each.
  std::vector<std::string> source_addresses;
  /// Set by --sdp: "FILE: 'session name' L24/48000/2 (PT 97), ptime 1 ms, ..." for the start-up
  /// line; "" for --listen.
  std::string sdp_summary;
  /// Set by --sdp and --sap: the session's name (SDP s=), reported with its sources.
  std::string session;
  /// Set by --sdp and --sap (RFC 7273 a=ts-refclk ntp/ptp with a=mediaclk:direct): the RTP
  /// timestamps are capture instants on that clock, so sources place themselves on the
  /// timeline without Sender Reports (rtp/media_clock.hpp).
  std::optional<MediaClock> media_clock;
  [[nodiscard]] std::string describe() const;
};

/// The listen specs an SDP file's audio streams describe (RFC 8866 via parse_sdp): one per
/// m=audio with a non-zero port; a multicast connection address is joined (with its
/// source-filter), a unicast one is received on the wildcard address of its family at the
/// media port. Each gets the stream's payload map (rtpmap/fmtp over the static types) with
/// `payload_flags` (--payload, which override the SDP) applied on top.
/// Errors: nullopt with `error` naming the file and the problem (unreadable, not SDP, no audio,
/// SRTP, a --payload that does not parse). Thread: setup.
std::optional<std::vector<ListenSpec>> listens_from_sdp(
    const std::string& path, const std::vector<std::string>& payload_flags, std::string& error);
/// The same for a description already read: `text` (at most 1 MiB), named `origin` in the
/// summaries and errors ("SAP from 10.0.0.5", a file name). Thread: any.
std::optional<std::vector<ListenSpec>> listens_from_sdp_text(
    std::string_view text, const std::string& origin, const std::vector<std::string>& payload_flags,
    std::string& error);

/// An address block, "10.0.0.0/8", "2001:db8::/32", or one address (its full length). --allow.
struct Cidr {
  int family = 0;                        ///< AF_INET or AF_INET6
  std::array<std::uint8_t, 16> bytes{};  ///< network byte order; IPv4 in the first 4
  int prefix = 0;                        ///< 0..32 (IPv4) or 0..128 (IPv6)
  std::string text;                      ///< as given, for messages
  /// True when `sa` lies in the block. An IPv4-mapped IPv6 address matches IPv4 blocks.
  /// Any thread; pure.
  [[nodiscard]] bool contains(const sockaddr* sa) const noexcept;
};

/// Which sources a per-source setting applies to: `port:N` (every source arriving on listen port
/// N) or `ssrc:0x1A2B3C4D` (one RTP stream; decimal accepted too).
struct SourceSelector {
  enum class Kind : std::uint8_t { port, ssrc } kind = Kind::port;
  std::uint32_t value = 0;
  std::string text;  ///< as given, for messages
  [[nodiscard]] bool matches(std::uint16_t port, std::uint32_t ssrc, bool has_ssrc) const noexcept {
    return kind == Kind::port ? value == port : has_ssrc && value == ssrc;
  }
};

/// One --offset, --route or --gain flag: SEL=VALUE.
struct SourceRule {
  SourceSelector selector;
  nanoseconds offset{0};   ///< --offset: signed shift on the timeline (later is positive)
  std::vector<int> route;  ///< --route: 0-based device channels
  double gain_db = 0;      ///< --gain: dB, -120..+24
};

/// What the rules give one source (later rules override earlier ones; ssrc: beats port:).
struct SourceSettings {
  nanoseconds offset{0};
  std::optional<std::vector<int>> route;  ///< unset: the standard route (node/mixer.hpp)
  double gain_db = 0;
};

struct NodeConfig {
  std::vector<ListenSpec> listens;  ///< --listen, --sdp; at least one unless --sap or a capture
  PayloadMap payloads;              ///< static PTs (RFC 3551) plus --payload PT=CODEC/RATE/CH
  std::vector<std::string> payload_flags;  ///< --payload as given (applied over SAP's SDPs)
  /// --sap [ADDR:PORT] (repeatable): where SAP announcements (RFC 2974) are heard; without an
  /// address the groups of rtp/sap.hpp's kSapGroups on port 9875. Each announced session's audio
  /// streams are received as --sdp would, until its deletion or its timeout.
  std::vector<ListenSpec> sap;
  /// --sap-filter GLOB: only sessions whose name (s=) matches (fnmatch(3)); "" = all.
  std::string sap_filter;

  /// --latency auto (default): adaptive playout (jitter/playout.hpp): the target delay follows
  /// the measured jitter within [min_latency, max_latency]. --latency DURATION: fixed playout
  /// delay, the time the jitter buffer waits for a packet past the arrival-predicted time of the
  /// first packet, 0..10 s. Receiver-added delay, arrival -> DAC = delay + render_lead + device
  /// output latency.
  bool latency_auto = true;
  nanoseconds latency = std::chrono::milliseconds(40);  ///< fixed delay (latency_auto false)
  nanoseconds min_latency{0};                           ///< --min-latency, 0..10 s
  nanoseconds max_latency = std::chrono::seconds(
      1);  ///< --max-latency, > min, <= 10 s (60 s with a --raw listen: its byte-stream backlog)
  /// --profile speech|music: late-loss budget 1 % or 0.1 % (jitter/playout.hpp kSpeechProfile,
  /// kMusicProfile). Default speech.
  bool music = false;
  /// --jitter-quantile: overrides the profile's quantile, 0.5..0.99999.
  double jitter_quantile = 0;
  /// --render-lead: how far ahead of the device position the loop thread renders (concealment
  /// decisions happen this early). 0 = one device period + 10 ms: the callback pulls a whole
  /// period at once, the render timer runs every <= 5 ms, and 5 ms absorb loop scheduling jitter.
  /// Range 0..1 s.
  nanoseconds render_lead{0};
  /// --drift on|off: clock drift compensation (jitter/playout.hpp): each source's speed follows
  /// its sender's clock against the device's, estimated from arrival times. Off only when the
  /// senders share the device's clock (PTP-locked): fixed --latency then passes samples through
  /// bit-exact at equal rates. Default on.
  bool drift_compensation = true;
  /// --resampler-quality: speexdsp quality 0..10 (4 = speexdsp's default; 3 is its VoIP setting).
  int resampler_quality = 4;
  /// --resampler-bypass on|off: sources at the device's rate play without the resampler while
  /// their speed is within 500 ppm of 1, and slip one frame at a time to follow drift
  /// (node/drift_resampler.hpp); off: they always go through it.
  bool resampler_bypass = true;
  /// --source-timeout: a source with no packet for this long is removed (its last statistics
  /// stay in --stats-json as "departed"). 0 = never. Default 5 s.
  nanoseconds source_timeout = std::chrono::seconds(5);
  /// --max-sources: sources mixed at once, 1..1024. Default 64. Streams beyond it are refused
  /// and counted (sources_refused).
  int max_sources = 64;
  /// --max-sources-per-host: sources whose RTP comes from one IP address (any port), 0..1024;
  /// 0 = no limit; -1 (default) = half of --max-sources (at least 1) for network input and no
  /// limit for --pcap (a capture's media gateway may send every call). Loopback senders are
  /// never limited. Streams beyond it are refused and counted (sources_refused,
  /// sources_refused_per_host).
  int max_sources_per_host = -1;
  /// The limit in effect (the default resolved as above).
  [[nodiscard]] int sources_per_host_limit() const noexcept {
    if (max_sources_per_host >= 0) return max_sources_per_host;
    return pcap.empty() ? std::max(1, max_sources / 2) : 0;
  }
  /// --sync rtcp|none. rtcp (default): sources whose senders send RTCP Sender Reports are placed
  /// on the senders' NTP timeline (RFC 3550 §6.4.1), so equal capture instants play at the same
  /// device frame; sources without SR play at arrival + playout delay. none: SRs are ignored.
  bool sync_rtcp = true;
  /// --sync absolute (issue #19; implies sync_rtcp): the timeline is this node's wall clock. An
  /// instant captured at sender NTP time T (RTCP SR) reaches the DAC at wall-clock T +
  /// playout_delay (+ the source's --offset), so nodes whose wall clocks agree (NTP, PTP) play
  /// in step. Sources without SR play at their own delay.
  bool sync_absolute = false;
  /// --playout-delay: capture (sender NTP) -> DAC with --sync absolute, 10 ms .. 5 s. It must
  /// cover the network path, its jitter and the render lead; packets that arrive later play late
  /// and are counted (short_of_delay).
  nanoseconds playout_delay{200'000'000};
  /// --offset SEL=±DURATION, --route SEL=CHANNELS, --gain SEL=±NdB (repeatable).
  std::vector<SourceRule> offsets, routes, gains;

  /// Settings for a source of `port` / `ssrc` (has_ssrc false: headerless PCM).
  [[nodiscard]] SourceSettings settings_for(std::uint16_t port, std::uint32_t ssrc,
                                            bool has_ssrc) const;

  /// The checks across fields and of ranges the field types do not carry; "" when the config
  /// can run, else one line naming the flag to fix: no --listen; a latency, render lead or RTCP
  /// interval out of range; --min-latency above --max-latency; a port: rule naming no --listen
  /// port; a --route channel beyond --channels; --http-token-file without --http; an --output
  /// whose extension or --output-format cannot be written. Any thread; pure.
  [[nodiscard]] std::string validate() const;
  /// The playout settings every source gets (jitter/playout.hpp): adaptive or fixed delay, its
  /// bounds, drift compensation, the profile's (or --jitter-quantile's) quantile and memory.
  /// clock_rate is left for the source.
  [[nodiscard]] PlayoutConfig playout() const;
  /// "auto (speech, 0-1000 ms)" or "40 ms", for the startup line.
  [[nodiscard]] std::string describe_latency() const;

  // Device.
  /// --host-api: "jack" (any text containing it) is libjack (node/jack_backend.hpp); otherwise a
  /// substring of a PortAudio host API name; "" = PortAudio's default.
  std::string host_api;
  std::string device;  ///< --device: index or substring of a device name; "" = default output
  double rate = 0;     ///< --rate Hz; 0 = the device's default rate
  int channels = 2;    ///< --channels, 1..64
  int period = 0;      ///< --period frames per callback; 0 = let the host API choose
  /// --rt-priority N, 1..99: lock memory, loop thread at SCHED_FIFO N - 10, real-time audio
  /// thread on ALSA (node/rt_scheduling.hpp). 0 = off (default).
  int rt_priority = 0;
  std::string client_name = "rtpnode";  ///< --client-name (JACK client name)
  /// --device-retry on|off: a lost device (JACK server gone, USB DAC unplugged, a stream that
  /// stopped calling back) is reopened with backoff while sources keep receiving (on, default);
  /// off: rtpnode exits with status 3 at once, for a service manager to restart it.
  bool device_retry = true;
  /// --idle-suspend DUR: after DUR without a source, release the device (JACK: the client leaves
  /// the graph; ALSA: the PCM is closed) and open it again at the first packet of a new source.
  /// An idle node then costs no audio thread. 0 = never (default: JACK connections made by hand
  /// to rtpnode's ports would not survive it). 0..1 day.
  nanoseconds idle_suspend{0};
  /// --output FILE: render the mix to FILE instead of a device (node/file_backend.hpp). The
  /// extension picks the container: .wav (RIFF WAVE, at most 4 GB), .rf64 or .flac. Paced in real
  /// time by a virtual device clock at `rate` (default 48000 Hz) and `period` (default 256
  /// frames), so network input plays as it would on a device. "" = a PortAudio device.
  std::string output;
  /// --output-format s16|s24|f32: sample format of --output (f32: WAV only). Default s16.
  std::string output_format = "s16";
  /// --pcap FILE: take the datagrams of a pcap or pcapng capture ("-" = standard input) instead
  /// of binding the --listen ports, replayed at their capture times (node/capture_replay.hpp);
  /// --listen says which destination ports (and addresses) play; without --listen, calls are
  /// discovered (SIP/SDP, else RTP heuristics: node/call_discovery.hpp), the caller's voice
  /// left, the callee's right. rtpnode stops once the capture is replayed and the sources have
  /// played out. No RTCP is sent. "" = live sockets.
  std::string pcap;
  /// --real-time: with --pcap and --output, replay at the capture's own pace (as to a device)
  /// instead of as fast as the CPU allows. Default off: a capture rendered to a file is rendered
  /// offline, on a virtual clock (Node::run_offline).
  bool real_time = false;
  /// True when the node renders offline: --pcap into --output without --real-time. The loop then
  /// runs on a virtual clock driven by the capture's times and the file's blocks. Any thread; pure.
  [[nodiscard]] bool offline() const noexcept {
    return !pcap.empty() && !output.empty() && !real_time;
  }
  /// --report FILE: at exit, a JSON report per call (and per stream outside calls): Call-ID,
  /// From/To, times, digits; per direction packets, loss, late, duplicates, jitter (max, mean),
  /// the longest gap, and an E-model R and MOS (node/e_model.hpp). "" = none.
  std::string report;
  /// --capture IFACE: tap an interface live (libpcap; promiscuous; needs CAP_NET_RAW) instead
  /// of binding the --listen ports; as --pcap otherwise (discovery without --listen), with no
  /// end. --capture-filter BPF narrows what is captured (tcpdump's syntax). "" = none.
  std::string capture, capture_filter;
  /// --record DIR: one stereo WAV per discovered call (--pcap without --listen), caller left,
  /// callee right, at the device rate, named by start time and Call-ID
  /// (node/call_recorder.hpp). "" = none.
  std::string record;
  /// --select CALL-ID|all: which discovered calls play to the device; the others are still
  /// decoded, recorded (--record) and reported, muted. "all" (default) plays every call.
  std::string select = "all";

  // Run control and reporting.
  std::optional<nanoseconds>
      duration;  ///< --duration: stop after this long; unset = run until signalled
  nanoseconds stats_interval = std::chrono::seconds(1);  ///< --stats-interval; 0 = no stats lines
  std::string stats_json;  ///< --stats-json FILE: written every interval and at exit
  bool quiet = false;      ///< --quiet: no periodic stats line
  /// --http ADDR:PORT: metrics, stats and control endpoint (node/http_server.hpp); unset = none.
  /// The address is a literal IP; 127.0.0.1 keeps it on this host.
  std::optional<ListenSpec> http;
  /// --http-allow-remote: answer clients that are not on this host (loopback). Off by default:
  /// binding to a public address alone does not expose control.
  bool http_allow_remote = false;
  /// --name: this node's name, as controllers see it (mDNS service name, stats "name"); empty =
  /// the host name.
  std::string name;
  /// --mdns on|off: with --http, advertise the endpoint over mDNS/DNS-SD as _rtpnode._tcp
  /// (node/mdns_advertiser.hpp).
  bool mdns = true;
  /// --allow CIDR (repeatable): RTP, RTCP and raw PCM are accepted only from these address
  /// blocks; other datagrams are dropped before parsing and counted (packets_not_allowed).
  /// Empty = from anywhere.
  std::vector<Cidr> allow;
  /// --http-token-file FILE: control requests (POST) need "Authorization: Bearer <token>", the
  /// token being the file's first line (whitespace trimmed, non-empty). Empty = no token; Host
  /// and Origin are checked either way (node/http_server.hpp).
  std::string http_token;
  /// --event-log FILE: one JSON object per line per event (joins, leaves, underruns, concealment
  /// and late-packet bursts, xruns, drift at its limit, control changes). Appended to.
  std::string event_log;
  /// --rtcp-rr on|off: RTCP Receiver Reports to every sender (RFC 3550 §6.4.2) at the §6.2
  /// interval. Default on.
  bool rtcp_rr = true;
  /// --rtcp-min-interval: the §6.2 minimum interval Tmin (default 5 s; RFC 3550 §6.2 allows a
  /// smaller one, 360 / session kbit/s, for large sessions' receivers). 0.1..60 s.
  nanoseconds rtcp_min_interval = std::chrono::seconds(5);
};

/// The command line as text (what main.cpp binds CLI11 to; a config file can fill it too), with
/// NodeConfig's defaults formatted into it: the defaults live in NodeConfig alone, and --help
/// shows the same. make_node_config() turns it into a checked NodeConfig.
struct NodeFlags {
  NodeFlags();
  std::vector<std::string> listens, payloads, offsets, routes, gains, allows;
  std::vector<std::string> sdps;  ///< --sdp FILE (repeatable)
  std::vector<std::string> saps;  ///< --sap [ADDR:PORT] (repeatable; "default" = the groups)
  /// --raw FORMAT, each with the index in `listens` of the --listen before it (-1: none).
  std::vector<std::pair<int, std::string>> raws;
  std::string latency, min_latency, max_latency, profile, render_lead, drift, source_timeout, sync;
  std::string duration, stats_interval, http, http_token_file, rtcp_rr, rtcp_min_interval;
  std::string device_retry, idle_suspend, resampler_bypass, playout_delay, mdns;
};

/// Builds a NodeConfig from `flags` on top of `base` (its fields CLI11 binds directly: numbers,
/// device names, files) and validates it (NodeConfig::validate). Reads --http-token-file.
/// Returns std::nullopt with `error` set to one line naming the flag. Thread: any.
std::optional<NodeConfig> make_node_config(const NodeFlags& flags, NodeConfig base,
                                           std::string& error);

/// Formats a duration as parse_duration reads it, in the largest unit that keeps it whole:
/// "40ms", "5s", "250us", "0s".
std::string format_duration(nanoseconds d);

/// The longest duration parse_duration accepts: 1000 days, far below int64 nanoseconds (292
/// years), so sums with monotonic times and conversions to frames cannot overflow.
inline constexpr nanoseconds kMaxDuration = std::chrono::hours(24 * 1000);

/// Parses a duration with a unit: "40ms", "2s", "1.5s", "250us", "1m". Plain numbers are refused
/// (the unit is required); 0 .. kMaxDuration. Returns std::nullopt with `error` set on bad input.
std::optional<nanoseconds> parse_duration(std::string_view text, std::string& error);

/// Parses "port:N" or "ssrc:0xHEX" / "ssrc:DECIMAL". Returns std::nullopt with `error` set.
std::optional<SourceSelector> parse_selector(std::string_view text, std::string& error);
/// Parses "SEL=+12.5ms" / "SEL=-3ms" (sign optional, unit required, |offset| <= 10 s).
std::optional<SourceRule> parse_offset_rule(std::string_view text, std::string& error);
/// Parses "SEL=L", "R", "LR" or 1-based channel lists "1,2" / "3" into 0-based device channels,
/// each < device_channels.
std::optional<SourceRule> parse_route_rule(std::string_view text, int device_channels,
                                           std::string& error);
/// Parses "SEL=-6dB" / "SEL=+3dB" / "SEL=0dB" (unit dB required; -120..+24).
std::optional<SourceRule> parse_gain_rule(std::string_view text, std::string& error);

/// Parses "ADDR:PORT" or "[IPV6]:PORT". Returns std::nullopt with `error` set on bad input.
std::optional<ListenSpec> parse_listen(std::string_view text, std::string& error);
/// Parses "ADDR/PREFIX" or "ADDR" (IPv4 or IPv6 literal). Host bits beyond the prefix must be
/// zero ("10.1.2.3/8" is refused: say 10.0.0.0/8).
std::optional<Cidr> parse_cidr(std::string_view text, std::string& error);

}  // namespace rtpnode
