// rtpsend: the test sender. Streams audio files or test signals as RTP (or headerless PCM) with
// exact pacing: packet i of a stream leaves at t0 + i * ptime / (1 + skew) on the monotonic clock
// (absolute deadlines, so sleep errors never accumulate), plus any injected network delay.
// RTP goes through one oRTP session per stream, which also sends RTCP Sender Reports with NTP
// time (RFC 3550 §6.4.1) to port+1 and a BYE at the end. Faults are seeded and reproducible.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <ortp/ortp.h>
#include <sndfile.h>
#include <speex/speex_resampler.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <queue>
#include <random>
#include <vector>

#include "node/config.hpp"
#include "rtp/codec.hpp"
#include "rtp/ortp_log.hpp"
#include "rtp/rtcp.hpp"
#include "rtp/payload_format.hpp"
#include "rtp/units.hpp"
#include "tools/fault_injector.hpp"

using namespace rtpnode;

namespace {

volatile std::sig_atomic_t g_stop = 0;

std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
std::int64_t mono_ns() {
  return clock_ns(CLOCK_MONOTONIC);
}

void sleep_until(std::int64_t t_ns) {
  timespec ts{static_cast<time_t>(t_ns / 1'000'000'000), static_cast<long>(t_ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR && !g_stop) {
  }
}

struct Audio {
  std::vector<std::int16_t> samples;  // interleaved
  int rate = 0;
  int channels = 0;
  [[nodiscard]] std::size_t frames() const {
    return samples.size() / static_cast<std::size_t>(channels);
  }
};

Audio read_file(const std::string& path) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (!f) throw std::runtime_error("cannot read '" + path + "': " + sf_strerror(nullptr));
  Audio a;
  a.rate = info.samplerate;
  a.channels = info.channels;
  a.samples.resize(static_cast<std::size_t>(info.frames) * static_cast<std::size_t>(info.channels));
  const sf_count_t got = sf_readf_short(f, a.samples.data(), info.frames);
  sf_close(f);
  a.samples.resize(static_cast<std::size_t>(got) * static_cast<std::size_t>(a.channels));
  if (got == 0) throw std::runtime_error("'" + path + "' holds no audio");
  return a;
}

/// Headerless PCM file in the --raw-format layout (s16le/RATE/CHANNELS).
Audio read_raw_file(const std::string& path, const PayloadFormat& f) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Audio a{{}, static_cast<int>(f.audio_rate), f.channels};
  a.samples.resize(bytes.size() / 2 / f.channels * f.channels);
  for (std::size_t i = 0; i < a.samples.size(); ++i)
    a.samples[i] = static_cast<std::int16_t>(static_cast<std::uint8_t>(bytes[2 * i]) |
                                             (static_cast<std::uint8_t>(bytes[2 * i + 1]) << 8));
  if (a.samples.empty()) throw std::runtime_error("'" + path + "' holds no audio");
  return a;
}

/// One second of a test signal at 48 kHz mono (loops seamlessly: integer cycles per second).
Audio make_signal(const std::string& kind, double value) {
  Audio a{std::vector<std::int16_t>(48000, 0), 48000, 1};
  if (kind == "tone") {
    for (int i = 0; i < 48000; ++i)
      a.samples[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(
          std::lround(16384.0 * std::sin(2 * M_PI * value * i / 48000.0)));
  } else if (kind == "clicks") {
    const int every = static_cast<int>(48000 / value);
    for (int i = 0; i < 48000; i += every)
      a.samples[static_cast<std::size_t>(i)] = 29491;  // -1 dBFS impulse
  }
  return a;
}

Audio to_channels(const Audio& in, int channels) {
  if (in.channels == channels) return in;
  Audio out{{}, in.rate, channels};
  out.samples.resize(in.frames() * static_cast<std::size_t>(channels));
  for (std::size_t f = 0; f < in.frames(); ++f) {
    if (channels == 1) {
      int sum = 0;
      for (int c = 0; c < in.channels; ++c) sum += in.samples[f * in.channels + c];
      out.samples[f] = static_cast<std::int16_t>(sum / in.channels);
    } else {
      for (int c = 0; c < channels; ++c)
        out.samples[f * channels + c] = in.samples[f * in.channels + std::min(c, in.channels - 1)];
    }
  }
  return out;
}

Audio resample(const Audio& in, int rate) {
  if (in.rate == rate) return in;
  int err = 0;
  SpeexResamplerState* st = speex_resampler_init(in.channels, in.rate, rate, 10, &err);
  if (!st) throw std::runtime_error(std::string("resampler: ") + speex_resampler_strerror(err));
  speex_resampler_skip_zeros(st);
  Audio out{{}, rate, in.channels};
  out.samples.resize((in.frames() * static_cast<std::size_t>(rate) / in.rate + 64) * in.channels);
  spx_uint32_t in_len = static_cast<spx_uint32_t>(in.frames());
  spx_uint32_t out_len = static_cast<spx_uint32_t>(out.samples.size() / in.channels);
  speex_resampler_process_interleaved_int(st, in.samples.data(), &in_len, out.samples.data(),
                                          &out_len);
  speex_resampler_destroy(st);
  out.samples.resize(std::size_t{out_len} * in.channels);
  return out;
}

std::string encoding_name(Codec c) {
  switch (c) {
    case Codec::pcmu:
      return "PCMU";
    case Codec::pcma:
      return "PCMA";
    case Codec::g722:
      return "G722";
    case Codec::l16:
      return "L16";
    case Codec::opus:
      return "opus";
    default:
      return "raw";
  }
}

int default_pt(const PayloadFormat& f) {
  switch (f.codec) {
    case Codec::pcmu:
      return 0;
    case Codec::pcma:
      return 8;
    case Codec::g722:
      return 9;
    case Codec::l16:
      if (f.clock_rate == 44100) return f.channels == 2 ? 10 : 11;
      return 96;
    default:
      return 96;
  }
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

/// Everything one stream needs: its audio, encoder, transport, fault injector and send queue.
struct Stream {
  struct Pending {
    std::int64_t send_at;
    std::uint64_t order;  // ties keep generation order
    std::uint16_t seq;
    std::uint32_t ts;
    bool marker;
    std::vector<std::uint8_t> payload;
    bool operator>(const Pending& o) const {
      return send_at != o.send_at ? send_at > o.send_at : order > o.order;
    }
  };

  std::string name;
  ListenSpec dest;
  PayloadFormat fmt;
  int pt = 0;
  std::uint32_t ssrc = 0;
  Audio audio;
  std::unique_ptr<Encoder> enc;
  RtpSession* session = nullptr;
  RtpProfile* profile = nullptr;
  int raw_fd = -1;
  sockaddr_storage raw_addr{};
  socklen_t raw_len = 0;
  std::unique_ptr<FaultInjector> injector;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> queue;
  std::ofstream trace;

  int frames_per_packet = 0;
  int ticks_per_packet = 0;
  std::uint64_t index = 0;  ///< next packet to generate
  std::size_t pos = 0;      ///< audio position (frames)
  bool live = false;        ///< --live-epoch: the input is a live feed; vpos is its position
  std::int64_t vpos = 0;    ///< live: input frame of the next packet's first frame (< 0: before it)
  int rtcp_fd = -1;         ///< our own RTCP socket (SR with the exact NTP <-> RTP mapping)
  sockaddr_storage rtcp_addr{};
  socklen_t rtcp_len = 0;
  std::int64_t next_sr_at = 0;  ///< monotonic ns of the next Sender Report
  std::uint64_t sent_payload_octets = 0;
  std::uint16_t seq = 0;      ///< sequence number of the next packet that goes out (or is lost)
  std::uint32_t ts_base = 0;  ///< RTP timestamp of packet 0, moved by jumps and SSRC changes
  bool marker_next = true;    ///< first packet of a talkspurt (RFC 3551 §4.1)
  bool generating = true;
  std::uint64_t order = 0;
  bool ssrc_changed = false, seq_jumped = false, ts_jumped = false;

  std::uint64_t packets = 0, datagrams = 0, bytes = 0, dtx_suppressed = 0, paused = 0,
                ssrc_changes = 0;
  std::vector<double> late_us;

  ~Stream() {
    if (session) rtp_session_destroy(session);
    if (rtcp_fd >= 0) close(rtcp_fd);
    if (profile) rtp_profile_destroy(profile);
    if (raw_fd >= 0) close(raw_fd);
  }
};

struct Options {
  std::vector<std::string> files;
  std::vector<std::string> dests;
  std::string codec = "l16", ptime = "20ms", sdp, stats_json, duration, raw_format, trace_out,
              start_at;
  std::string tone, clicks, iface;
  bool silence = false, loop = false, raw = false, fec = false, dtx = false;
  int pt = -1, bitrate = 0, channels = 0, complexity = 10, ttl = 1;
  std::string rtcp_interval = "5s";
  std::string live_epoch;
  bool no_bye = false;
  std::string expected_loss;
  std::uint32_t ssrc = 0;
  bool ssrc_set = false;
  std::string ssrc_change_at, seq_jump_at, ts_jump_at, pause;
};

/// Sets the outgoing multicast interface of a socket (IPv4 or IPv6) by interface name.
void set_multicast_iface(int fd, bool v6, const std::string& iface) {
  const unsigned index = if_nametoindex(iface.c_str());
  if (index == 0) throw std::runtime_error("--iface " + iface + ": no such interface");
  int rc = 0;
  if (v6) {
    const int i = static_cast<int>(index);
    rc = setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &i, sizeof i);
  } else {
    ip_mreqn m{};
    m.imr_ifindex = static_cast<int>(index);
    rc = setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m);
  }
  if (rc != 0) throw std::runtime_error("--iface " + iface + ": " + std::strerror(errno));
}

void open_transport(Stream& s, const Options& o, bool raw) {
  const bool v6 = s.dest.address.find(':') != std::string::npos;
  if (raw) {
    s.raw_fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    if (v6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&s.raw_addr);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(s.dest.port);
      inet_pton(AF_INET6, s.dest.address.c_str(), &a->sin6_addr);
      s.raw_len = sizeof(sockaddr_in6);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&s.raw_addr);
      a->sin_family = AF_INET;
      a->sin_port = htons(s.dest.port);
      inet_pton(AF_INET, s.dest.address.c_str(), &a->sin_addr);
      s.raw_len = sizeof(sockaddr_in);
    }
    if (!o.iface.empty()) set_multicast_iface(s.raw_fd, v6, o.iface);
    const int ttl = o.ttl;
    setsockopt(s.raw_fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP,
               v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL, &ttl, sizeof ttl);
    return;
  }
  s.session = rtp_session_new(RTP_SESSION_SENDONLY);
  rtp_session_set_scheduling_mode(s.session, 0);
  rtp_session_set_blocking_mode(s.session, 0);
  s.profile = rtp_profile_new("rtpsend");
  PayloadType* p = payload_type_new();
  p->type = PAYLOAD_AUDIO_PACKETIZED;
  p->clock_rate = static_cast<int>(s.fmt.clock_rate);
  p->channels = s.fmt.channels;
  p->mime_type = ortp_strdup(encoding_name(s.fmt.codec).c_str());
  rtp_profile_set_payload(s.profile, s.pt, p);
  rtp_session_set_profile(s.session, s.profile);
  if (rtp_session_set_payload_type(s.session, s.pt) != 0)
    throw std::runtime_error("oRTP refused payload type");
  rtp_session_set_ssrc(s.session, s.ssrc);
  // RTCP is ours, not oRTP's: oRTP stamps an SR with the wall-clock time it is sent and the
  // timestamp of the last packet, so its mapping carries the send jitter. rtpsend knows the
  // exact sampling instant of every timestamp (RFC 3550 §6.4.1 asks for exactly that).
  rtp_session_enable_rtcp(s.session, FALSE);
  s.rtcp_fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&s.rtcp_addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<std::uint16_t>(s.dest.port + 1));
    inet_pton(AF_INET6, s.dest.address.c_str(), &a->sin6_addr);
    s.rtcp_len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&s.rtcp_addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<std::uint16_t>(s.dest.port + 1));
    inet_pton(AF_INET, s.dest.address.c_str(), &a->sin_addr);
    s.rtcp_len = sizeof(sockaddr_in);
  }
  {
    const int ttl = o.ttl;
    setsockopt(s.rtcp_fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP,
               v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL, &ttl, sizeof ttl);
    if (!o.iface.empty()) set_multicast_iface(s.rtcp_fd, v6, o.iface);
  }
  if (rtp_session_set_remote_addr_and_port(s.session, s.dest.address.c_str(), s.dest.port,
                                           s.dest.port + 1) != 0)
    throw std::runtime_error("cannot send to " + s.dest.describe());
  rtp_session_set_multicast_ttl(s.session, o.ttl);
  if (!o.iface.empty()) set_multicast_iface(rtp_session_get_rtp_socket(s.session), v6, o.iface);
}

void write_sdp(const std::string& path, const std::vector<std::unique_ptr<Stream>>& streams,
               double ptime_ms) {
  std::ofstream o(path, std::ios::trunc);
  const Stream& first = *streams.front();
  const bool v6 = first.dest.address.find(':') != std::string::npos;
  const std::string af = v6 ? "IP6 " : "IP4 ";
  o << "v=0\r\n"
    << "o=- " << first.ssrc << " 1 IN " << af << first.dest.address << "\r\n"
    << "s=rtpsend\r\n"
    << "t=0 0\r\n";
  for (const auto& sp : streams) {
    const Stream& s = *sp;
    const bool sv6 = s.dest.address.find(':') != std::string::npos;
    o << "m=audio " << s.dest.port << " RTP/AVP " << s.pt << "\r\n"
      << "c=IN " << (sv6 ? "IP6 " : "IP4 ") << s.dest.address << "\r\n";
    // RFC 7587 §7: opus is always announced as opus/48000/2; stereo=1 says the stream is stereo.
    if (s.fmt.codec == Codec::opus) {
      o << "a=rtpmap:" << s.pt << " opus/48000/2\r\n";
      if (s.fmt.channels == 2) o << "a=fmtp:" << s.pt << " stereo=1;sprop-stereo=1\r\n";
    } else {
      o << "a=rtpmap:" << s.pt << " " << encoding_name(s.fmt.codec) << "/" << s.fmt.clock_rate;
      if (s.fmt.channels > 1) o << "/" << s.fmt.channels;
      o << "\r\n";
    }
    o << "a=ptime:" << ptime_ms << "\r\n"
      << "a=ssrc:" << s.ssrc << " cname:rtpsend\r\n"
      << "a=sendonly\r\n";
  }
  if (!o) throw std::runtime_error("cannot write --sdp " + path);
}

/// "DUR@AT" (e.g. 5s@20s) for --pause.
bool parse_pause(const std::string& text, std::int64_t& dur, std::int64_t& at, std::string& err) {
  const auto sep = text.find('@');
  if (sep == std::string::npos) {
    err = "expected DURATION@TIME, e.g. 5s@20s";
    return false;
  }
  auto d = parse_duration(text.substr(0, sep), err), a = parse_duration(text.substr(sep + 1), err);
  if (!d || !a) return false;
  dur = d->count();
  at = a->count();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "rtpsend: stream audio files or test signals as RTP with exact pacing and seeded network "
      "faults"};
  Options o;
  app.add_option(
         "FILE", o.files,
         "Audio files (any format libsndfile reads); each becomes one stream with its own SSRC")
      ->check(CLI::ExistingFile);
  app.add_option("--dest", o.dests,
                 "Destination ADDR:PORT ([IPv6]:PORT); RTCP goes to PORT+1. One for all streams, "
                 "or one per FILE")
      ->required()
      ->allow_extra_args(false);
  app.add_option("--codec", o.codec, "l16 | pcmu | pcma | g722 | opus")
      ->check(CLI::IsMember({"l16", "pcmu", "pcma", "g722", "opus"}))
      ->capture_default_str();
  app.add_option("--ptime", o.ptime, "Packet duration (Opus: 2.5, 5, 10, 20, 40 or 60 ms)")
      ->capture_default_str();
  app.add_option("--pt", o.pt, "RTP payload type (default: the static one, else 96)")
      ->check(CLI::Range(0, 127));
  auto* ssrc_opt = app.add_option("--ssrc", o.ssrc,
                                  "SSRC of the first stream (others: +1, +2 ...; default: random)");
  app.add_option("--channels", o.channels,
                 "Channels to send (default: the input's; G.711/G.722: 1; Opus: 1 or 2)")
      ->check(CLI::Range(1, 8));
  app.add_option("--bitrate", o.bitrate, "Opus bitrate in bit/s (default: libopus' choice)")
      ->check(CLI::Range(6000, 510000));
  app.add_option("--complexity", o.complexity, "Opus encoder complexity 0..10")
      ->check(CLI::Range(0, 10))
      ->capture_default_str();
  app.add_flag("--fec", o.fec, "Opus in-band FEC (LBRR)");
  app.add_option("--expected-loss", o.expected_loss,
                 "Loss the Opus FEC is sized for, e.g. 10% (implies --fec)");
  app.add_flag("--dtx", o.dtx,
               "Opus DTX: frames of silence are not sent (sequence numbers stay contiguous, the "
               "timestamp jumps, the marker bit flags the next talkspurt)");
  app.add_option("--tone", o.tone,
                 "Send a sine instead of a file: frequency, e.g. 1kHz or 440 (-6 dBFS)");
  app.add_option("--clicks", o.clicks, "Send impulses instead of a file: rate, e.g. 1/s or 10/s");
  app.add_flag("--silence", o.silence, "Send digital silence instead of a file");
  app.add_option("--raw-format", o.raw_format,
                 "FILEs are headerless PCM in this format: s16le/RATE/CHANNELS");
  app.add_flag("--loop", o.loop,
               "Start the input over at its end (timestamps continue); signals always loop");
  app.add_option("--duration", o.duration,
                 "Stop after this long (e.g. 10s); signals default to 10s");
  app.add_option("--start-at", o.start_at,
                 "Start at a time: +DURATION from now (e.g. +2s) or a Unix time in seconds "
                 "(e.g. 1795000000.5), so several senders can start together");
  app.add_option("--sdp", o.sdp,
                 "Write an SDP file describing the streams (RFC 4566; ffmpeg and VLC read it)");
  app.add_flag("--raw", o.raw,
               "Send headerless s16le PCM (no RTP header), like the seed sender: 8000 Hz mono "
               "unless --channels says otherwise, 320-byte datagrams every 20 ms");
  app.add_option("--live-epoch", o.live_epoch,
                 "Treat the input as a live feed whose first frame was captured at this Unix time "
                 "(s): streaming "
                 "starts at the feed's current position, so senders started at different moments "
                 "carry the same "
                 "instant at the same NTP time (their RTCP SRs say so)");
  app.add_flag("--no-bye", o.no_bye,
               "Do not send RTCP BYE at the end (the receiver then times the stream out)");
  app.add_option("--rtcp-interval", o.rtcp_interval,
                 "Interval of RTCP Sender Reports (RFC 3550 §6.2 suggests 5 s)")
      ->capture_default_str();
  app.add_option("--ttl", o.ttl, "Multicast TTL / hop limit")
      ->check(CLI::Range(0, 255))
      ->capture_default_str();
  app.add_option("--iface", o.iface, "Interface name for outgoing multicast (e.g. eth0)");
  app.add_option("--stats-json", o.stats_json, "Write a summary as JSON at the end");
  std::uint64_t seed = 1;
  std::string loss_s, burst_s, jitter_s, reorder_s, duplicate_s;
  double skew_ppm = 0;
  app.add_option("--seed", seed, "Seed of the fault injector (same seed, same faults)")
      ->capture_default_str();
  app.add_option("--loss", loss_s, "Independent packet loss, e.g. 5%");
  app.add_option("--burst-loss", burst_s,
                 "Gilbert burst loss P,R: P(good->bad), P(bad->good), e.g. 1%,25% "
                 "(loss P/(P+R), mean burst 1/R packets)");
  app.add_option(
      "--jitter", jitter_s,
      "Extra delay per packet: uniform:MIN-MAX (e.g. uniform:0-40ms) or pareto:SCALE,SHAPE");
  app.add_option("--reorder", reorder_s,
                 "Probability a packet is held back 1.5 ptime (the next one overtakes it)");
  app.add_option("--duplicate", duplicate_s, "Probability a packet is sent twice");
  app.add_option("--skew-ppm", skew_ppm,
                 "Sender clock error: audio leaves at (1 + N/1e6) x real time while RTP "
                 "timestamps advance nominally")
      ->check(CLI::Range(-100000.0, 100000.0));
  app.add_option("--ssrc-change-at", o.ssrc_change_at,
                 "At this time, restart as a new sender: new SSRC, sequence "
                 "number and timestamp");
  app.add_option("--seq-jump-at", o.seq_jump_at,
                 "At this time, jump the sequence number by +10000");
  app.add_option("--ts-jump-at", o.ts_jump_at,
                 "At this time, jump the RTP timestamp by +60 s of ticks");
  app.add_option("--pause", o.pause,
                 "DUR@TIME: send nothing for DUR from TIME (e.g. 5s@20s): the sender is paused, "
                 "its sequence numbers continue and its timestamps jump, as with DTX");
  app.add_option("--trace-out", o.trace_out,
                 "Write one line per packet: seq rtp_ts send_ns fate (fate: sent, lost, "
                 "reordered, duplicated, dtx, paused); stream N>0 writes FILE.N");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; any usage error: 2
  }
  o.ssrc_set = ssrc_opt->count() > 0;

  std::string err;
  auto fail = [](const std::string& m) {
    std::cerr << "rtpsend: " << m << "\n";
    return 2;
  };
  const int signals = !o.tone.empty() + !o.clicks.empty() + o.silence;
  if (signals > 1) return fail("give one of --tone, --clicks, --silence");
  if (signals == 1 && !o.files.empty()) return fail("give input FILEs or a test signal, not both");
  if (signals == 0 && o.files.empty())
    return fail("nothing to send: give a FILE, or --tone, --clicks or --silence");
  const std::size_t n_streams = signals ? 1 : o.files.size();
  if (o.dests.size() != 1 && o.dests.size() != n_streams)
    return fail("give one --dest for all streams or one per FILE (" + std::to_string(n_streams) +
                ")");
  std::vector<ListenSpec> dests;
  for (const auto& d : o.dests) {
    auto spec = parse_listen(d, err);
    if (!spec) return fail("--dest: " + err);
    dests.push_back(*spec);
  }
  auto ptime = parse_duration(o.ptime, err);
  if (!ptime || ptime->count() <= 0)
    return fail("--ptime: " + (err.empty() ? std::string("must be > 0") : err));
  std::optional<std::chrono::nanoseconds> duration;
  if (!o.duration.empty()) {
    duration = parse_duration(o.duration, err);
    if (!duration) return fail("--duration: " + err);
  } else if (signals) {
    duration = std::chrono::seconds(10);
  }
  auto optional_time = [&](const std::string& text, const char* flag, std::int64_t& out) {
    if (text.empty()) return true;
    auto d = parse_duration(text, err);
    if (!d) {
      std::cerr << "rtpsend: " << flag << ": " << err << "\n";
      return false;
    }
    out = d->count();
    return true;
  };
  std::int64_t ssrc_change_at = -1, seq_jump_at = -1, ts_jump_at = -1, pause_at = -1, pause_dur = 0;
  if (!optional_time(o.ssrc_change_at, "--ssrc-change-at", ssrc_change_at) ||
      !optional_time(o.seq_jump_at, "--seq-jump-at", seq_jump_at) ||
      !optional_time(o.ts_jump_at, "--ts-jump-at", ts_jump_at))
    return 2;
  if (!o.pause.empty() && !parse_pause(o.pause, pause_dur, pause_at, err))
    return fail("--pause: " + err);

  FaultConfig faults;
  faults.seed = seed;
  if (!loss_s.empty()) {
    auto v = parse_probability(loss_s, err);
    if (!v) return fail("--loss: " + err);
    faults.loss = *v;
  }
  if (!burst_s.empty()) {
    const auto comma = burst_s.find(',');
    auto p = comma == std::string::npos ? std::nullopt
                                        : parse_probability(burst_s.substr(0, comma), err);
    auto r = comma == std::string::npos ? std::nullopt
                                        : parse_probability(burst_s.substr(comma + 1), err);
    if (!p || !r || *r <= 0)
      return fail("--burst-loss: expected P,R with R > 0, e.g. 1%,25%" +
                  (err.empty() ? "" : ": " + err));
    faults.burst_p = *p;
    faults.burst_r = *r;
  }
  if (!jitter_s.empty()) {
    auto j = parse_jitter(jitter_s, err);
    if (!j) return fail("--jitter: " + err);
    faults.jitter = *j;
  }
  if (!reorder_s.empty()) {
    auto v = parse_probability(reorder_s, err);
    if (!v) return fail("--reorder: " + err);
    faults.reorder = *v;
  }
  if (!duplicate_s.empty()) {
    auto v = parse_probability(duplicate_s, err);
    if (!v) return fail("--duplicate: " + err);
    faults.duplicate = *v;
  }
  EncoderOptions eo{o.bitrate, o.complexity, o.fec, 0, o.dtx};
  if (!o.expected_loss.empty()) {
    auto v = parse_probability(o.expected_loss, err);
    if (!v) return fail("--expected-loss: " + err);
    eo.opus_fec = true;
    eo.opus_expected_loss = static_cast<int>(std::lround(*v * 100));
  }
  if ((eo.opus_fec || eo.opus_dtx) && o.codec != "opus")
    return fail("--fec, --expected-loss and --dtx are Opus options");

  try {
    std::random_device rd;
    const double ptime_ms = std::chrono::duration<double, std::milli>(*ptime).count();
    std::vector<std::unique_ptr<Stream>> streams;
    for (std::size_t k = 0; k < n_streams; ++k) {
      auto s = std::make_unique<Stream>();
      Audio audio;
      if (signals) {
        if (!o.tone.empty()) {
          std::string t = o.tone;
          double scale = 1;
          if (t.size() > 3 && t.substr(t.size() - 3) == "kHz") {
            scale = 1000;
            t.resize(t.size() - 3);
          } else if (t.size() > 2 && t.substr(t.size() - 2) == "Hz")
            t.resize(t.size() - 2);
          double hz = 0;
          auto r = std::from_chars(t.data(), t.data() + t.size(), hz);
          if (r.ec != std::errc{} || hz * scale <= 0 || hz * scale >= 24000 ||
              std::fmod(hz * scale, 1.0) != 0)
            return fail("--tone " + o.tone +
                        ": a whole number of Hz below 24 kHz, e.g. 1kHz or 440");
          audio = make_signal("tone", hz * scale);
          s->name = "tone " + o.tone;
        } else if (!o.clicks.empty()) {
          double per_s = 0;
          const std::string c = o.clicks.substr(0, o.clicks.find("/s"));
          auto r = std::from_chars(c.data(), c.data() + c.size(), per_s);
          if (r.ec != std::errc{} || per_s <= 0 || per_s > 1000)
            return fail("--clicks " + o.clicks + ": e.g. 1/s (up to 1000/s)");
          audio = make_signal("clicks", per_s);
          s->name = "clicks " + o.clicks;
        } else {
          audio = make_signal("silence", 0);
          s->name = "silence";
        }
      } else if (!o.raw_format.empty()) {
        auto rf = parse_raw_format(o.raw_format, err);
        if (!rf) return fail("--raw-format: " + err);
        audio = read_raw_file(o.files[k], *rf);
        s->name = o.files[k];
      } else {
        audio = read_file(o.files[k]);
        s->name = o.files[k];
      }
      PayloadFormat f;
      if (o.raw) {
        f = PayloadFormat{Codec::raw_s16le, 8000, 8000,
                          static_cast<std::uint16_t>(o.channels ? o.channels : 1)};
      } else if (o.codec == "l16") {
        f = PayloadFormat{Codec::l16, static_cast<std::uint32_t>(audio.rate),
                          static_cast<std::uint32_t>(audio.rate),
                          static_cast<std::uint16_t>(o.channels ? o.channels : audio.channels)};
      } else if (o.codec == "opus") {
        const int ch = o.channels ? o.channels : std::min(audio.channels, 2);
        if (ch > 2) return fail("--channels: Opus over RTP carries 1 or 2 channels");
        f = PayloadFormat{Codec::opus, 48000, 48000, static_cast<std::uint16_t>(ch)};
      } else {
        if (o.channels > 1) return fail("--channels: " + o.codec + " is sent as 1 channel");
        const Codec c = o.codec == "pcmu"   ? Codec::pcmu
                        : o.codec == "pcma" ? Codec::pcma
                                            : Codec::g722;
        f = PayloadFormat{c, 8000, c == Codec::g722 ? 16000u : 8000u, 1};
      }
      s->fmt = f;
      s->audio = resample(to_channels(audio, f.channels), static_cast<int>(f.audio_rate));
      s->frames_per_packet = static_cast<int>(ns_to_frames(ptime->count(), f.audio_rate));
      if (s->frames_per_packet <= 0 || ptime_ms > kMaxPtimeMs)
        return fail("--ptime " + o.ptime + " is out of range (up to 120ms)");
      if (f.codec == Codec::opus) {
        const double ok[] = {2.5, 5, 10, 20, 40, 60};
        if (std::find(std::begin(ok), std::end(ok), ptime_ms) == std::end(ok))
          return fail("--ptime " + o.ptime + ": Opus frames are 2.5, 5, 10, 20, 40 or 60 ms");
      }
      if (f.codec == Codec::g722 && s->frames_per_packet % 2)
        return fail("--ptime: G.722 needs an even number of samples");
      s->ticks_per_packet = static_cast<int>(s->frames_per_packet / f.frames_per_tick());
      s->dest = dests[dests.size() == 1 ? 0 : k];
      s->ssrc =
          o.ssrc_set ? o.ssrc + static_cast<std::uint32_t>(k) : (std::uint32_t{rd()} << 16) ^ rd();
      s->pt = o.pt >= 0 ? o.pt : default_pt(f);
      s->seq = static_cast<std::uint16_t>(rd());
      s->ts_base = static_cast<std::uint32_t>(rd());
      s->enc = make_encoder(f, eo);
      FaultConfig fc = faults;
      fc.seed = faults.seed + k;  // each stream its own, still reproducible, faults
      fc.reorder_delay_ns = frames_to_ns(s->frames_per_packet, f.audio_rate) * 3 / 2;
      s->injector = std::make_unique<FaultInjector>(fc);
      if (!o.trace_out.empty()) {
        const std::string path = k == 0 ? o.trace_out : o.trace_out + "." + std::to_string(k);
        s->trace.open(path, std::ios::trunc);
        if (!s->trace) throw std::runtime_error("cannot write --trace-out " + path);
      }
      streams.push_back(std::move(s));
    }
    if (!o.raw) {
      ortp_init();
      ortp_log_route();  // what oRTP prints goes through one filter: repeats are counted
      ortp_set_log_level_mask(nullptr, ORTP_ERROR | ORTP_FATAL);
    }
    for (auto& s : streams) open_transport(*s, o, o.raw);
    if (!o.sdp.empty() && !o.raw) write_sdp(o.sdp, streams, ptime_ms);

    std::signal(SIGINT, [](int) { g_stop = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    for (const auto& s : streams) {
      char ssrc_hex[16];
      std::snprintf(ssrc_hex, sizeof ssrc_hex, "0x%08" PRIx32, s->ssrc);
      std::cerr << "rtpsend: " << s->name << " -> " << s->dest.describe() << " as "
                << (o.raw
                        ? "raw s16le/" + std::to_string(s->fmt.audio_rate) + "/" +
                              std::to_string(s->fmt.channels)
                        : s->fmt.describe() + " pt " + std::to_string(s->pt) + " ssrc " + ssrc_hex)
                << ", " << ptime_ms << " ms packets\n";
    }

    // Start time: now (+2 ms to settle), +DURATION, or a Unix time.
    std::int64_t t0 = mono_ns() + 2'000'000;
    if (!o.start_at.empty()) {
      if (o.start_at[0] == '+') {
        auto d = parse_duration(o.start_at.substr(1), err);
        if (!d) return fail("--start-at: " + err);
        t0 = mono_ns() + d->count();
      } else {
        double unix_s = 0;
        auto r = std::from_chars(o.start_at.data(), o.start_at.data() + o.start_at.size(), unix_s);
        if (r.ec != std::errc{} || r.ptr != o.start_at.data() + o.start_at.size())
          return fail("--start-at " + o.start_at + ": +DURATION or a Unix time in seconds");
        t0 = mono_ns() + static_cast<std::int64_t>(std::llround(unix_s * 1e9)) -
             clock_ns(CLOCK_REALTIME);
      }
    }
    // Sender wall clock (RFC 3550 §4 NTP format) = monotonic + this offset.
    const std::int64_t ntp_minus_mono =
        clock_ns(CLOCK_REALTIME) - mono_ns() + 2'208'988'800ll * 1'000'000'000ll;
    if (!o.live_epoch.empty()) {
      double epoch_s = 0;
      auto r =
          std::from_chars(o.live_epoch.data(), o.live_epoch.data() + o.live_epoch.size(), epoch_s);
      if (r.ec != std::errc{} || r.ptr != o.live_epoch.data() + o.live_epoch.size())
        return fail("--live-epoch " + o.live_epoch + ": a Unix time in seconds");
      // Start on the 10 ms grid counted from the epoch: a whole number of frames at every rate
      // (8, 16, 32, 44.1, 48 kHz), so each sender's first frame is exactly an input frame.
      const std::int64_t epoch_mono = static_cast<std::int64_t>(std::llround(epoch_s * 1e9)) +
                                      2'208'988'800ll * 1'000'000'000ll - ntp_minus_mono;
      constexpr std::int64_t kGrid = 10'000'000;
      const std::int64_t since = t0 - epoch_mono;
      const std::int64_t steps = since >= 0 ? (since + kGrid - 1) / kGrid : -((-since) / kGrid);
      t0 = epoch_mono + steps * kGrid;
      for (auto& sp : streams) {
        sp->live = true;
        sp->vpos = steps * static_cast<std::int64_t>(sp->fmt.audio_rate) / 100;
      }
    }
    const std::int64_t end = duration ? t0 + duration->count() : INT64_MAX;
    const auto sr_interval = parse_duration(o.rtcp_interval, err);
    if (!sr_interval || sr_interval->count() < 100'000'000)
      return fail("--rtcp-interval: at least 100ms" + (err.empty() ? "" : ": " + err));
    for (auto& sp : streams) sp->next_sr_at = t0;
    const double rate_scale = 1.0 + skew_ppm * 1e-6;
    std::vector<std::uint8_t> payload(65536);

    // Nominal departure of packet i: every ptime on absolute deadlines, scaled by the skew.
    auto nominal = [&](const Stream& s, std::uint64_t i) {
      return t0 + static_cast<std::int64_t>(
                      static_cast<double>(frames_to_ns(
                          static_cast<frames_t>(i) * s.frames_per_packet, s.fmt.audio_rate)) /
                      rate_scale);
    };
    // RTCP SR + SDES (+ BYE): the RTP timestamp of packet `index` and the wall-clock instant
    // its first frame was sampled (nominal, skew included), RFC 3550 §6.4.1.
    auto send_sr = [&](Stream& s, std::uint64_t index, bool bye) {
      if (s.rtcp_fd < 0) return;
      RtcpSenderReport sr;
      sr.ssrc = s.ssrc;
      const std::int64_t ntp_ns = nominal(s, index) + ntp_minus_mono;
      sr.ntp = (static_cast<std::uint64_t>(ntp_ns / 1'000'000'000) << 32) |
               ((static_cast<std::uint64_t>(ntp_ns % 1'000'000'000) << 32) / 1'000'000'000);
      sr.rtp_ts = static_cast<std::uint32_t>(
          s.ts_base + index * static_cast<std::uint64_t>(s.ticks_per_packet));
      sr.packets = static_cast<std::uint32_t>(s.packets);
      sr.octets = static_cast<std::uint32_t>(s.bytes);
      const auto pkt = rtcp_build_sender_report(sr, "rtpsend", bye);
      sendto(s.rtcp_fd, pkt.data(), pkt.size(), 0, reinterpret_cast<const sockaddr*>(&s.rtcp_addr),
             s.rtcp_len);
    };
    auto generate = [&](Stream& s, std::int64_t at) {
      if (at >= s.next_sr_at) {
        send_sr(s, s.index, false);
        s.next_sr_at += sr_interval->count();
      }
      const std::int64_t elapsed = at - t0;
      if (ssrc_change_at >= 0 && elapsed >= ssrc_change_at && !s.ssrc_changed) {
        s.ssrc_changed = true;
        s.ssrc = (std::uint32_t{rd()} << 16) ^ rd();
        s.seq = static_cast<std::uint16_t>(rd());
        s.ts_base = static_cast<std::uint32_t>(rd());
        s.marker_next = true;
        ++s.ssrc_changes;
        if (s.session) rtp_session_set_ssrc(s.session, s.ssrc);
      }
      if (seq_jump_at >= 0 && elapsed >= seq_jump_at && !s.seq_jumped) {
        s.seq_jumped = true;
        s.seq = static_cast<std::uint16_t>(s.seq + 10000);
      }
      if (ts_jump_at >= 0 && elapsed >= ts_jump_at && !s.ts_jumped) {
        s.ts_jumped = true;
        s.ts_base += s.fmt.clock_rate * 60;
      }
      std::vector<std::int16_t> pcm(static_cast<std::size_t>(s.frames_per_packet) * s.fmt.channels,
                                    0);
      if (s.live) {
        // A live feed: frame k of the packet is input frame vpos + k (silence before the feed
        // began; the input repeats exactly with --loop).
        const auto frames = static_cast<std::int64_t>(s.audio.frames());
        for (int k = 0; k < s.frames_per_packet; ++k) {
          std::int64_t idx = s.vpos + k;
          if (idx < 0 || frames == 0) continue;
          if (idx >= frames) {
            if (!o.loop) break;
            idx %= frames;
          }
          std::copy_n(s.audio.samples.begin() + static_cast<std::ptrdiff_t>(idx * s.fmt.channels),
                      s.fmt.channels,
                      pcm.begin() + static_cast<std::ptrdiff_t>(k * s.fmt.channels));
        }
        s.vpos += s.frames_per_packet;
      } else {
        if (s.pos >= s.audio.frames()) s.pos = 0;  // looping input
        const std::size_t n = std::min<std::size_t>(s.frames_per_packet, s.audio.frames() - s.pos);
        std::copy_n(s.audio.samples.begin() + static_cast<std::ptrdiff_t>(s.pos * s.fmt.channels),
                    n * s.fmt.channels, pcm.begin());
        s.pos += n;
      }
      const int len = s.enc->encode(pcm, s.frames_per_packet, payload);
      if (len < 0) throw std::runtime_error("encoder failed");
      const auto ts = static_cast<std::uint32_t>(
          s.ts_base + s.index * static_cast<std::uint64_t>(s.ticks_per_packet));
      ++s.index;
      auto log = [&](std::uint16_t seq, std::int64_t when, const char* fate) {
        if (s.trace) s.trace << seq << ' ' << ts << ' ' << (when - t0) << ' ' << fate << '\n';
      };
      if (pause_at >= 0 && elapsed >= pause_at && elapsed < pause_at + pause_dur) {
        ++s.paused;
        s.marker_next = true;
        log(s.seq, at, "paused");
        return;
      }
      if (s.fmt.codec == Codec::opus && eo.opus_dtx && len <= 2) {
        // RFC 7587 §3.3: a 1-2 byte DTX frame need not be sent; the next talkspurt is marked.
        ++s.dtx_suppressed;
        s.marker_next = true;
        log(s.seq, at, "dtx");
        return;
      }
      ++s.packets;
      const std::uint16_t seq = s.seq++;
      const PacketFate fate = faults.any() ? s.injector->next() : PacketFate{};
      if (fate.lost) {
        log(seq, at, "lost");
        return;
      }
      std::vector<std::uint8_t> bytes(payload.begin(), payload.begin() + len);
      for (int c = 0; c < (fate.duplicated ? 2 : 1); ++c)
        s.queue.push({at + fate.delay_ns, s.order++, seq, ts, s.marker_next, bytes});
      s.marker_next = false;
      log(seq, at + fate.delay_ns,
          fate.reordered    ? "reordered"
          : fate.duplicated ? "duplicated"
                            : "sent");
    };
    auto send = [&](Stream& s) {
      const Stream::Pending p = s.queue.top();
      s.queue.pop();
      s.late_us.push_back(static_cast<double>(mono_ns() - p.send_at) / 1000.0);
      if (s.raw_fd >= 0) {
        sendto(s.raw_fd, p.payload.data(), p.payload.size(), 0,
               reinterpret_cast<sockaddr*>(&s.raw_addr), s.raw_len);
      } else {
        // oRTP stamps the sequence number when it creates the packet: set it first.
        rtp_session_set_seq_number(s.session, p.seq);
        mblk_t* m = rtp_session_create_packet(s.session, RTP_FIXED_HEADER_SIZE, p.payload.data(),
                                              p.payload.size());
        rtp_set_markbit(m, p.marker ? 1 : 0);
        rtp_session_sendm_with_ts(s.session, m, p.ts);
      }
      ++s.datagrams;
      s.bytes += p.payload.size();
    };

    // Event loop over every stream: generate each packet at its nominal time, send each at its
    // send time; always the earliest event next.
    while (!g_stop) {
      Stream* best = nullptr;
      std::int64_t best_at = INT64_MAX;
      bool best_is_send = false;
      for (auto& sp : streams) {
        Stream& s = *sp;
        const bool input_done = s.live ? s.vpos >= static_cast<std::int64_t>(s.audio.frames())
                                       : s.pos >= s.audio.frames();
        if (s.generating && ((input_done && !o.loop && !signals) || nominal(s, s.index) >= end))
          s.generating = false;
        const std::int64_t gen_at = s.generating ? nominal(s, s.index) : INT64_MAX;
        const std::int64_t send_at = s.queue.empty() ? INT64_MAX : s.queue.top().send_at;
        if (gen_at < best_at) {
          best = &s;
          best_at = gen_at;
          best_is_send = false;
        }
        if (send_at < best_at) {
          best = &s;
          best_at = send_at;
          best_is_send = true;
        }
      }
      if (!best) break;
      if (best_is_send) {
        sleep_until(best_at);
        send(*best);
      } else {
        generate(*best,
                 best_at);  // encoding happens ahead of the deadline: packets wait in the queue
      }
    }

    if (!o.no_bye)
      for (auto& sp : streams) send_sr(*sp, sp->index, true);  // RFC 3550 §6.6: the stream ends

    nlohmann::json js = nlohmann::json::array();
    std::uint64_t packets = 0, datagrams = 0, bytes = 0;
    FaultCounters total;
    std::vector<double> all_late;
    for (const auto& sp : streams) {
      const Stream& s = *sp;
      const FaultCounters& fc = s.injector->counters();
      packets += s.packets;
      datagrams += s.datagrams;
      bytes += s.bytes;
      total.lost += fc.lost;
      total.duplicated += fc.duplicated;
      total.reordered += fc.reordered;
      total.delayed += fc.delayed;
      all_late.insert(all_late.end(), s.late_us.begin(), s.late_us.end());
      js.push_back({{"name", s.name},
                    {"dest", s.dest.describe()},
                    {"ssrc", s.ssrc},
                    {"payload_type", s.pt},
                    {"payload", s.fmt.describe()},
                    {"packets", s.packets},
                    {"datagrams", s.datagrams},
                    {"payload_bytes", s.bytes},
                    {"dtx_suppressed", s.dtx_suppressed},
                    {"paused", s.paused},
                    {"ssrc_changes", s.ssrc_changes},
                    {"faults",
                     {{"lost", fc.lost},
                      {"duplicated", fc.duplicated},
                      {"reordered", fc.reordered},
                      {"delayed", fc.delayed}}}});
    }
    const double p50 = percentile(all_late, 0.5), p99 = percentile(all_late, 0.99);
    const double mx = all_late.empty() ? 0 : *std::max_element(all_late.begin(), all_late.end());
    std::fprintf(stderr,
                 "rtpsend: sent %" PRIu64 " packets (%" PRIu64 " datagrams), %" PRIu64
                 " payload bytes; send-time error p50 %.0f us, p99 %.0f us, max %.0f us\n",
                 packets, datagrams, bytes, p50, p99, mx);
    if (faults.any())
      std::fprintf(stderr,
                   "rtpsend: injected (seed %" PRIu64 "): lost %" PRIu64 ", duplicated %" PRIu64
                   ", reordered %" PRIu64 ", delayed %" PRIu64 "\n",
                   seed, total.lost, total.duplicated, total.reordered, total.delayed);
    if (!o.stats_json.empty()) {
      nlohmann::json j{{"packets", packets},
                       {"datagrams", datagrams},
                       {"payload_bytes", bytes},
                       {"ssrc", streams.front()->ssrc},
                       {"payload_type", streams.front()->pt},
                       {"seed", seed},
                       {"skew_ppm", skew_ppm},
                       {"faults",
                        {{"lost", total.lost},
                         {"duplicated", total.duplicated},
                         {"reordered", total.reordered},
                         {"delayed", total.delayed}}},
                       {"send_error_us", {{"p50", p50}, {"p99", p99}, {"max", mx}}},
                       {"streams", js}};
      std::ofstream(o.stats_json) << j.dump(2) << "\n";
    }
    streams.clear();  // BYE and close before ortp_exit
    if (!o.raw) ortp_exit();
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
