// rtpsend: streams an audio file as RTP (or headerless PCM) with exact pacing: packet i leaves at
// t0 + i * ptime on the monotonic clock (absolute deadlines, so sleep errors never accumulate).
// RTP goes through an oRTP session, which also sends RTCP Sender Reports (RFC 3550 §6.4.1) to
// port+1 and a BYE at the end.
#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ortp/ortp.h>
#include <sndfile.h>
#include <speex/speex_resampler.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <queue>
#include <random>
#include <vector>

#include "node/config.hpp"
#include "tools/fault_injector.hpp"
#include "rtp/codec.hpp"
#include "rtp/payload_format.hpp"
#include "rtp/units.hpp"

using namespace rtpnode;

namespace {

volatile std::sig_atomic_t g_stop = 0;

std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
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
  [[nodiscard]] std::size_t frames() const { return samples.size() / static_cast<std::size_t>(channels); }
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
  speex_resampler_process_interleaved_int(st, in.samples.data(), &in_len, out.samples.data(), &out_len);
  speex_resampler_destroy(st);
  out.samples.resize(std::size_t{out_len} * in.channels);
  return out;
}

std::string encoding_name(Codec c) {
  switch (c) {
    case Codec::pcmu: return "PCMU";
    case Codec::pcma: return "PCMA";
    case Codec::g722: return "G722";
    case Codec::l16: return "L16";
    case Codec::opus: return "opus";
    default: return "raw";
  }
}

void write_sdp(const std::string& path, const ListenSpec& dest, int pt, const PayloadFormat& f, double ptime_ms,
               std::uint32_t ssrc) {
  const bool v6 = dest.address.find(':') != std::string::npos;
  std::ofstream o(path, std::ios::trunc);
  o << "v=0\r\n"
    << "o=- " << ssrc << " 1 IN " << (v6 ? "IP6 " : "IP4 ") << dest.address << "\r\n"
    << "s=rtpsend\r\n"
    << "c=IN " << (v6 ? "IP6 " : "IP4 ") << dest.address << "\r\n"
    << "t=0 0\r\n"
    << "m=audio " << dest.port << " RTP/AVP " << pt << "\r\n";
  // RFC 7587 §7: opus is always announced as opus/48000/2; stereo=1 says the stream is stereo.
  if (f.codec == Codec::opus) {
    o << "a=rtpmap:" << pt << " opus/48000/2\r\n";
    if (f.channels == 2) o << "a=fmtp:" << pt << " stereo=1;sprop-stereo=1\r\n";
  } else {
    o << "a=rtpmap:" << pt << " " << encoding_name(f.codec) << "/" << f.clock_rate;
    if (f.channels > 1) o << "/" << f.channels;
    o << "\r\n";
  }
  o << "a=ptime:" << ptime_ms << "\r\n";
  if (!o) throw std::runtime_error("cannot write --sdp " + path);
}

int default_pt(const PayloadFormat& f) {
  switch (f.codec) {
    case Codec::pcmu: return 0;
    case Codec::pcma: return 8;
    case Codec::g722: return 9;
    case Codec::l16:
      if (f.clock_rate == 44100) return f.channels == 2 ? 10 : 11;
      return 96;
    default: return 96;
  }
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rtpsend: stream an audio file as RTP with exact pacing"};
  std::string file, dest_s, codec_s = "l16", ptime_s = "20ms", sdp, stats_json, duration_s;
  int pt = -1, bitrate = 0, channels = 0;
  std::uint32_t ssrc = 0;
  bool ssrc_set = false, loop = false, raw = false;
  app.add_option("FILE", file, "Audio file (any format libsndfile reads)")->required()->check(CLI::ExistingFile);
  app.add_option("--dest", dest_s, "Destination ADDR:PORT ([IPv6]:PORT); RTCP goes to PORT+1")->required();
  app.add_option("--codec", codec_s, "l16 | pcmu | pcma | g722 | opus")
      ->check(CLI::IsMember({"l16", "pcmu", "pcma", "g722", "opus"}))->capture_default_str();
  app.add_option("--ptime", ptime_s, "Packet duration (Opus: 2.5, 5, 10, 20, 40 or 60 ms)")->capture_default_str();
  app.add_option("--pt", pt, "RTP payload type (default: the static one, else 96)")->check(CLI::Range(0, 127));
  auto* ssrc_opt = app.add_option("--ssrc", ssrc, "SSRC (default: random)");
  app.add_option("--channels", channels, "Channels to send (default: the file's; G.711/G.722: 1; Opus: 1 or 2)")
      ->check(CLI::Range(1, 8));
  app.add_option("--bitrate", bitrate, "Opus bitrate in bit/s (default: libopus' choice)")->check(CLI::Range(6000, 510000));
  app.add_flag("--loop", loop, "Start the file over at its end (timestamps continue)");
  app.add_option("--duration", duration_s, "Stop after this long (e.g. 10s)");
  app.add_option("--sdp", sdp, "Write an SDP file describing the stream");
  app.add_flag("--raw", raw, "Send headerless s16le PCM (no RTP header), like the seed sender: the file is "
                             "converted to 8000 Hz mono unless --channels/--codec say otherwise");
  app.add_option("--stats-json", stats_json, "Write a summary as JSON at the end");
  std::uint64_t seed = 1;
  std::string loss_s, burst_s, jitter_s, reorder_s, duplicate_s, trace_out;
  double skew_ppm = 0;
  app.add_option("--seed", seed, "Seed of the fault injector (same seed, same faults)")->capture_default_str();
  app.add_option("--loss", loss_s, "Independent packet loss, e.g. 5%");
  app.add_option("--burst-loss", burst_s, "Gilbert burst loss P,R: P(good->bad), P(bad->good), e.g. 1%,25% "
                                          "(loss P/(P+R), mean burst 1/R packets)");
  app.add_option("--jitter", jitter_s, "Extra delay per packet: uniform:MIN-MAX (e.g. uniform:0-40ms) or pareto:SCALE,SHAPE");
  app.add_option("--reorder", reorder_s, "Probability a packet is held back 1.5 ptime (the next one overtakes it)");
  app.add_option("--duplicate", duplicate_s, "Probability a packet is sent twice");
  app.add_option("--skew-ppm", skew_ppm, "Sender clock error: audio leaves at (1 + N/1e6) x real time while RTP "
                                         "timestamps advance nominally")->check(CLI::Range(-100000.0, 100000.0));
  app.add_option("--trace-out", trace_out, "Write one line per packet: seq rtp_ts send_ns fate "
                                           "(fate: sent, lost, reordered, duplicated)");
  CLI11_PARSE(app, argc, argv);
  ssrc_set = ssrc_opt->count() > 0;

  std::string err;
  auto fail = [](const std::string& m) {
    std::cerr << "rtpsend: " << m << "\n";
    return 2;
  };
  auto dest = parse_listen(dest_s, err);
  if (!dest) return fail("--dest: " + err);
  auto ptime = parse_duration(ptime_s, err);
  if (!ptime || ptime->count() <= 0) return fail("--ptime: " + (err.empty() ? std::string("must be > 0") : err));
  FaultConfig faults;
  faults.seed = seed;
  if (!loss_s.empty()) {
    auto v = parse_probability(loss_s, err);
    if (!v) return fail("--loss: " + err);
    faults.loss = *v;
  }
  if (!burst_s.empty()) {
    const auto comma = burst_s.find(',');
    auto p = comma == std::string::npos ? std::nullopt : parse_probability(burst_s.substr(0, comma), err);
    auto r = comma == std::string::npos ? std::nullopt : parse_probability(burst_s.substr(comma + 1), err);
    if (!p || !r || *r <= 0) return fail("--burst-loss: expected P,R with R > 0, e.g. 1%,25%" + (err.empty() ? "" : ": " + err));
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
  std::optional<std::chrono::nanoseconds> duration;
  if (!duration_s.empty()) {
    duration = parse_duration(duration_s, err);
    if (!duration) return fail("--duration: " + err);
  }

  try {
    Audio audio = read_file(file);
    PayloadFormat f;
    if (raw) {
      f = PayloadFormat{Codec::raw_s16le, 8000, 8000, static_cast<std::uint16_t>(channels ? channels : 1)};
    } else if (codec_s == "l16") {
      f = PayloadFormat{Codec::l16, static_cast<std::uint32_t>(audio.rate), static_cast<std::uint32_t>(audio.rate),
                        static_cast<std::uint16_t>(channels ? channels : audio.channels)};
    } else if (codec_s == "opus") {
      const int ch = channels ? channels : std::min(audio.channels, 2);
      if (ch > 2) return fail("--channels: Opus over RTP carries 1 or 2 channels");
      f = PayloadFormat{Codec::opus, 48000, 48000, static_cast<std::uint16_t>(ch)};
    } else {
      if (channels > 1) return fail("--channels: " + codec_s + " is sent as 1 channel");
      const Codec c = codec_s == "pcmu" ? Codec::pcmu : codec_s == "pcma" ? Codec::pcma : Codec::g722;
      f = PayloadFormat{c, 8000, c == Codec::g722 ? 16000u : 8000u, 1};
    }
    audio = resample(to_channels(audio, f.channels), static_cast<int>(f.audio_rate));

    const auto frames_per_packet = static_cast<int>(ns_to_frames(ptime->count(), f.audio_rate));
    const double ptime_ms = std::chrono::duration<double, std::milli>(*ptime).count();
    if (frames_per_packet <= 0 || ptime_ms > kMaxPtimeMs) return fail("--ptime " + ptime_s + " is out of range (up to 120ms)");
    if (f.codec == Codec::opus) {
      const double ok[] = {2.5, 5, 10, 20, 40, 60};
      if (std::find(std::begin(ok), std::end(ok), ptime_ms) == std::end(ok))
        return fail("--ptime " + ptime_s + ": Opus frames are 2.5, 5, 10, 20, 40 or 60 ms");
    }
    if (f.codec == Codec::g722 && frames_per_packet % 2) return fail("--ptime: G.722 needs an even number of samples");
    const int ticks_per_packet = static_cast<int>(frames_per_packet / f.frames_per_tick());

    std::random_device rd;
    if (!ssrc_set) ssrc = (std::uint32_t{rd()} << 16) ^ rd();
    if (pt < 0) pt = default_pt(f);
    auto enc = make_encoder(f, EncoderOptions{bitrate, 10});

    // Transport.
    RtpSession* session = nullptr;
    int raw_fd = -1;
    sockaddr_storage raw_addr{};
    socklen_t raw_len = 0;
    RtpProfile* profile = nullptr;
    if (raw) {
      const bool v6 = dest->address.find(':') != std::string::npos;
      raw_fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
      if (v6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&raw_addr);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(dest->port);
        inet_pton(AF_INET6, dest->address.c_str(), &a->sin6_addr);
        raw_len = sizeof(sockaddr_in6);
      } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&raw_addr);
        a->sin_family = AF_INET;
        a->sin_port = htons(dest->port);
        inet_pton(AF_INET, dest->address.c_str(), &a->sin_addr);
        raw_len = sizeof(sockaddr_in);
      }
    } else {
      ortp_init();
      ortp_set_log_level_mask(nullptr, ORTP_ERROR | ORTP_FATAL);
      session = rtp_session_new(RTP_SESSION_SENDONLY);
      rtp_session_set_scheduling_mode(session, 0);
      rtp_session_set_blocking_mode(session, 0);
      profile = rtp_profile_new("rtpsend");
      PayloadType* p = payload_type_new();
      p->type = PAYLOAD_AUDIO_PACKETIZED;
      p->clock_rate = static_cast<int>(f.clock_rate);
      p->channels = f.channels;
      p->mime_type = ortp_strdup(encoding_name(f.codec).c_str());
      rtp_profile_set_payload(profile, pt, p);
      rtp_session_set_profile(session, profile);
      if (rtp_session_set_payload_type(session, pt) != 0) throw std::runtime_error("oRTP refused payload type");
      rtp_session_set_ssrc(session, ssrc);
      rtp_session_set_seq_number(session, static_cast<std::uint16_t>(rd()));
      rtp_session_enable_rtcp(session, TRUE);
      if (rtp_session_set_remote_addr_and_port(session, dest->address.c_str(), dest->port, dest->port + 1) != 0)
        throw std::runtime_error("cannot send to " + dest_s);
    }
    if (!sdp.empty() && !raw) write_sdp(sdp, *dest, pt, f, ptime_ms, ssrc);

    std::signal(SIGINT, [](int) { g_stop = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    char ssrc_hex[16];
    std::snprintf(ssrc_hex, sizeof ssrc_hex, "0x%08" PRIx32, ssrc);
    std::cerr << "rtpsend: " << file << " -> " << dest_s << " as "
              << (raw ? "raw s16le/" + std::to_string(f.audio_rate) + "/" + std::to_string(f.channels)
                      : f.describe() + " pt " + std::to_string(pt) + " ssrc " + ssrc_hex)
              << ", " << ptime_ms << " ms packets\n";

    std::vector<std::int16_t> pcm(static_cast<std::size_t>(frames_per_packet) * f.channels);
    std::vector<std::uint8_t> payload(65536);
    const std::size_t total_frames = audio.frames();
    std::size_t pos = 0;
    std::uint64_t packets = 0, datagrams = 0, bytes = 0;
    const std::uint32_t ts0 = static_cast<std::uint32_t>(rd());
    const auto seq0 = static_cast<std::uint16_t>(rd());
    std::vector<double> late_us;
    faults.reorder_delay_ns = frames_to_ns(frames_per_packet, f.audio_rate) * 3 / 2;
    FaultInjector injector(faults);
    std::ofstream trace;
    if (!trace_out.empty()) {
      trace.open(trace_out, std::ios::trunc);
      if (!trace) throw std::runtime_error("cannot write --trace-out " + trace_out);
    }

    // Packets wait here until their send time (nominal time + injected delay).
    struct Pending {
      std::int64_t send_at;
      std::uint64_t order;  // ties keep generation order
      std::uint16_t seq;
      std::uint32_t ts;
      std::vector<std::uint8_t> payload;
      bool operator>(const Pending& o) const { return send_at != o.send_at ? send_at > o.send_at : order > o.order; }
    };
    std::priority_queue<Pending, std::vector<Pending>, std::greater<>> queue;
    std::uint64_t order = 0;
    const double rate_scale = 1.0 + skew_ppm * 1e-6;
    const std::int64_t t0 = mono_ns() + 2'000'000;
    const std::int64_t end = duration ? t0 + duration->count() : INT64_MAX;
    // Nominal departure of packet i: every ptime, on absolute deadlines, scaled by the skew.
    auto nominal = [&](std::uint64_t i) {
      return t0 + static_cast<std::int64_t>(static_cast<double>(frames_to_ns(static_cast<frames_t>(i) * frames_per_packet, f.audio_rate)) / rate_scale);
    };
    bool generating = true;
    for (std::uint64_t i = 0; !g_stop && (generating || !queue.empty());) {
      if (generating && (pos >= total_frames && !loop)) generating = false;
      if (generating && nominal(i) >= end) generating = false;
      const std::int64_t next_gen = generating ? nominal(i) : INT64_MAX;
      const std::int64_t next_send = queue.empty() ? INT64_MAX : queue.top().send_at;
      if (next_gen == INT64_MAX && next_send == INT64_MAX) break;
      if (next_gen <= next_send) {
        if (pos >= total_frames) pos = 0;  // --loop
        std::fill(pcm.begin(), pcm.end(), 0);
        const std::size_t n = std::min<std::size_t>(frames_per_packet, total_frames - pos);
        std::copy_n(audio.samples.begin() + static_cast<std::ptrdiff_t>(pos * f.channels), n * f.channels, pcm.begin());
        pos += n;
        const int len = enc->encode(pcm, frames_per_packet, payload);
        if (len < 0) throw std::runtime_error("encoder failed");
        const auto seq = static_cast<std::uint16_t>(seq0 + i);
        const auto ts = static_cast<std::uint32_t>(ts0 + i * static_cast<std::uint64_t>(ticks_per_packet));
        const PacketFate fate = faults.any() ? injector.next() : PacketFate{};
        ++packets;
        if (fate.lost) {
          if (trace) trace << seq << ' ' << ts << ' ' << (next_gen - t0) << " lost\n";
        } else {
          std::vector<std::uint8_t> bytes_v(payload.begin(), payload.begin() + len);
          const int copies = fate.duplicated ? 2 : 1;
          for (int c = 0; c < copies; ++c) queue.push({next_gen + fate.delay_ns, order++, seq, ts, bytes_v});
          if (trace) trace << seq << ' ' << ts << ' ' << (next_gen + fate.delay_ns - t0) << ' '
                           << (fate.reordered ? "reordered" : fate.duplicated ? "duplicated" : "sent") << "\n";
        }
        ++i;
        continue;
      }
      sleep_until(next_send);
      const Pending p = queue.top();
      queue.pop();
      late_us.push_back(static_cast<double>(mono_ns() - p.send_at) / 1000.0);
      if (raw) {
        sendto(raw_fd, p.payload.data(), p.payload.size(), 0, reinterpret_cast<sockaddr*>(&raw_addr), raw_len);
      } else {
        rtp_session_set_seq_number(session, p.seq);
        rtp_session_send_with_ts(session, p.payload.data(), static_cast<int>(p.payload.size()), p.ts);
      }
      ++datagrams;
      bytes += p.payload.size();
    }
    if (session) {
      rtp_session_bye(session, "end of stream");
      rtp_session_destroy(session);
      rtp_profile_destroy(profile);
      ortp_exit();
    }
    if (raw_fd >= 0) close(raw_fd);

    const double p50 = percentile(late_us, 0.5), p99 = percentile(late_us, 0.99);
    const double mx = late_us.empty() ? 0 : *std::max_element(late_us.begin(), late_us.end());
    const FaultCounters& fc = injector.counters();
    std::fprintf(stderr, "rtpsend: sent %" PRIu64 " packets (%" PRIu64 " datagrams), %" PRIu64
                 " payload bytes; send-time error p50 %.0f us, p99 %.0f us, max %.0f us\n",
                 packets, datagrams, bytes, p50, p99, mx);
    if (faults.any())
      std::fprintf(stderr, "rtpsend: injected (seed %" PRIu64 "): lost %" PRIu64 ", duplicated %" PRIu64
                   ", reordered %" PRIu64 ", delayed %" PRIu64 "\n",
                   seed, fc.lost, fc.duplicated, fc.reordered, fc.delayed);
    if (!stats_json.empty()) {
      nlohmann::json j{{"packets", packets},
                       {"datagrams", datagrams},
                       {"payload_bytes", bytes},
                       {"ssrc", ssrc},
                       {"payload_type", pt},
                       {"seed", seed},
                       {"skew_ppm", skew_ppm},
                       {"faults", {{"lost", fc.lost}, {"duplicated", fc.duplicated}, {"reordered", fc.reordered},
                                   {"delayed", fc.delayed}}},
                       {"send_error_us", {{"p50", p50}, {"p99", p99}, {"max", mx}}}};
      std::ofstream(stats_json) << j.dump(2) << "\n";
    }
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
