#include "tools/rtpsend/stream.hpp"

#include "tools/rtpsend/options.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace rtpnode::rtpsend {

std::string encoding_name(Codec c) {
  switch (c) {
    case Codec::pcmu:
      return "PCMU";
    case Codec::pcma:
      return "PCMA";
    case Codec::g722:
      return "G722";
    case Codec::g729:
      return "G729";
    case Codec::amr_nb:
      return "AMR";
    case Codec::l16:
      return "L16";
    case Codec::l24:
      return "L24";
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
    case Codec::g729:
      return 18;
    case Codec::l16:
      if (f.clock_rate == 44100) return f.channels == 2 ? 10 : 11;
      return 96;
    default:
      return 96;
  }
}

namespace {

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

}  // namespace

void open_transport(Stream& s, int ttl_hops, const std::string& iface, bool raw, bool rtcp) {
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
    if (!iface.empty()) set_multicast_iface(s.raw_fd, v6, iface);
    const int ttl = ttl_hops;
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
  if (s.red_pt >= 0) {  // RFC 2198: the packets go out as red/CLOCK
    PayloadType* red = payload_type_new();
    red->type = PAYLOAD_AUDIO_PACKETIZED;
    red->clock_rate = static_cast<int>(s.fmt.clock_rate);
    red->channels = s.fmt.channels;
    red->mime_type = ortp_strdup("red");
    rtp_profile_set_payload(s.profile, s.red_pt, red);
  }
  rtp_session_set_profile(s.session, s.profile);
  if (rtp_session_set_payload_type(s.session, s.red_pt >= 0 ? s.red_pt : s.pt) != 0)
    throw std::runtime_error("oRTP refused payload type");
  rtp_session_set_ssrc(s.session, s.ssrc);
  // RTCP is ours, not oRTP's: oRTP stamps an SR with the wall-clock time it is sent and the
  // timestamp of the last packet, so its mapping carries the send jitter. rtpsend knows the
  // exact sampling instant of every timestamp (RFC 3550 §6.4.1 asks for exactly that).
  rtp_session_enable_rtcp(s.session, FALSE);
  if (rtcp) {  // --no-rtcp: rtcp_fd stays -1, no SR and no BYE are sent
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
      const int ttl = ttl_hops;
      setsockopt(s.rtcp_fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP,
                 v6 ? IPV6_MULTICAST_HOPS : IP_MULTICAST_TTL, &ttl, sizeof ttl);
      if (!iface.empty()) set_multicast_iface(s.rtcp_fd, v6, iface);
    }
  }
  if (rtp_session_set_remote_addr_and_port(s.session, s.dest.address.c_str(), s.dest.port,
                                           s.dest.port + 1) != 0)
    throw std::runtime_error("cannot send to " + s.dest.describe());
  rtp_session_set_multicast_ttl(s.session, ttl_hops);
  if (!iface.empty()) set_multicast_iface(rtp_session_get_rtp_socket(s.session), v6, iface);
}

void write_sdp(const std::string& path, const std::vector<std::unique_ptr<Stream>>& streams,
               double ptime_ms, const std::string& ts_refclk) {
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
    o << "m=audio " << s.dest.port << " RTP/AVP "
      << (s.red_pt >= 0 ? std::to_string(s.red_pt) + " " : std::string()) << s.pt << "\r\n"
      << "c=IN " << (sv6 ? "IP6 " : "IP4 ") << s.dest.address << "\r\n";
    if (s.red_pt >= 0)  // RFC 2198 §5: the blocks' payload types, primary first
      o << "a=rtpmap:" << s.red_pt << " red/" << s.fmt.clock_rate << "\r\n"
        << "a=fmtp:" << s.red_pt << " " << s.pt << "/" << s.pt << "\r\n";
    // RFC 7587 §7: opus is always announced as opus/48000/2; stereo=1 says the stream is stereo.
    if (s.fmt.codec == Codec::opus) {
      o << "a=rtpmap:" << s.pt << " opus/48000/2\r\n";
      if (s.fmt.channels == 2) o << "a=fmtp:" << s.pt << " stereo=1;sprop-stereo=1\r\n";
    } else {
      o << "a=rtpmap:" << s.pt << " " << encoding_name(s.fmt.codec) << "/" << s.fmt.clock_rate;
      if (s.fmt.channels > 1) o << "/" << s.fmt.channels;
      o << "\r\n";
      if (s.fmt.codec == Codec::amr_nb)  // RFC 4867 §8.1
        o << "a=fmtp:" << s.pt << " octet-align=" << (s.fmt.octet_aligned ? 1 : 0) << "\r\n";
    }
    o << "a=ptime:" << ptime_ms << "\r\n";
    // RFC 7273: the timestamps are the reference clock's time plus the offset (Sender sets
    // ts_base from the first packet's capture instant and this offset).
    if (ts_refclk == "ntp") o << "a=ts-refclk:ntp=/traceable/\r\n";
    if (ts_refclk == "ptp") o << "a=ts-refclk:ptp=IEEE1588-2008:traceable\r\n";
    if (!ts_refclk.empty()) o << "a=mediaclk:direct=" << s.media_offset << "\r\n";
    o << "a=ssrc:" << s.ssrc << " cname:rtpsend\r\n"
      << "a=sendonly\r\n";
  }
  if (!o) throw std::runtime_error("cannot write --sdp " + path);
}

std::vector<std::unique_ptr<Stream>> make_streams(const Options& o, const Plan& p,
                                                  std::random_device& rd) {
  std::string err;
  const double ptime_ms = std::chrono::duration<double, std::milli>(p.ptime).count();
  std::vector<std::unique_ptr<Stream>> streams;
  for (std::size_t k = 0; k < p.streams; ++k) {
    auto s = std::make_unique<Stream>();
    Audio audio;
    std::string signal;  ///< tone, clicks or silence: made again at the sending rate below
    double signal_value = 0;
    if (p.signals) {
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
          throw std::runtime_error("--tone " + o.tone +
                                   ": a whole number of Hz below 24 kHz, e.g. 1kHz or 440");
        signal = "tone";
        signal_value = hz * scale;
        s->name = "tone " + o.tone;
      } else if (!o.clicks.empty()) {
        double per_s = 0;
        const std::string c = o.clicks.substr(0, o.clicks.find("/s"));
        auto r = std::from_chars(c.data(), c.data() + c.size(), per_s);
        if (r.ec != std::errc{} || per_s <= 0 || per_s > 1000)
          throw std::runtime_error("--clicks " + o.clicks + ": e.g. 1/s (up to 1000/s)");
        signal = "clicks";
        signal_value = per_s;
        s->name = "clicks " + o.clicks;
      } else {
        signal = "silence";
        s->name = "silence";
      }
      audio = make_signal(signal, signal_value);
    } else if (!o.raw_format.empty()) {
      auto rf = parse_raw_format(o.raw_format, err);
      if (!rf) throw std::runtime_error("--raw-format: " + err);
      audio = read_raw_file(o.files[k], *rf);
      s->name = o.files[k];
    } else {
      audio = read_audio_file(o.files[k]);
      s->name = o.files[k];
    }
    PayloadFormat f;
    if (o.raw) {
      f = PayloadFormat{Codec::raw_s16le, 8000, 8000,
                        static_cast<std::uint16_t>(o.channels ? o.channels : 1)};
    } else if (o.codec == "l16" || o.codec == "l24") {
      f = PayloadFormat{o.codec == "l16" ? Codec::l16 : Codec::l24,
                        static_cast<std::uint32_t>(audio.rate),
                        static_cast<std::uint32_t>(audio.rate),
                        static_cast<std::uint16_t>(o.channels ? o.channels : audio.channels)};
    } else if (o.codec == "opus") {
      const int ch = o.channels ? o.channels : std::min(audio.channels, 2);
      if (ch > 2) throw std::runtime_error("--channels: Opus over RTP carries 1 or 2 channels");
      f = PayloadFormat{Codec::opus, 48000, 48000, static_cast<std::uint16_t>(ch)};
    } else {
      if (o.channels > 1)
        throw std::runtime_error("--channels: " + o.codec + " is sent as 1 channel");
      const Codec c = o.codec == "pcmu"   ? Codec::pcmu
                      : o.codec == "pcma" ? Codec::pcma
                      : o.codec == "g729" ? Codec::g729
                      : o.codec == "amr"  ? Codec::amr_nb
                                          : Codec::g722;
      f = PayloadFormat{c, 8000, c == Codec::g722 ? 16000u : 8000u, 1};
      f.octet_aligned = c == Codec::amr_nb && o.amr_octet_align;
    }
    s->fmt = f;
    s->audio = signal.empty()
                   ? resample(to_channels(audio, f.channels), static_cast<int>(f.audio_rate))
                   : to_channels(make_signal(signal, signal_value, static_cast<int>(f.audio_rate)),
                                 f.channels);
    s->frames_per_packet = static_cast<int>(ns_to_frames(p.ptime.count(), f.audio_rate));
    if (s->frames_per_packet <= 0 || ptime_ms > kMaxPtimeMs)
      throw std::runtime_error("--ptime " + o.ptime + " is out of range (up to 120ms)");
    if (f.codec == Codec::opus) {
      const double ok[] = {2.5, 5, 10, 20, 40, 60};
      if (std::find(std::begin(ok), std::end(ok), ptime_ms) == std::end(ok))
        throw std::runtime_error("--ptime " + o.ptime +
                                 ": Opus frames are 2.5, 5, 10, 20, 40 or 60 ms");
    }
    if (f.codec == Codec::g722 && s->frames_per_packet % 2)
      throw std::runtime_error("--ptime: G.722 needs an even number of samples");
    if (f.codec == Codec::amr_nb && s->frames_per_packet % 160)
      throw std::runtime_error("--ptime " + o.ptime + ": AMR frames are 20 ms");
    if (f.codec == Codec::g729 && s->frames_per_packet % 80)
      throw std::runtime_error("--ptime " + o.ptime + ": G.729 frames are 10 ms");
    if (f.codec == Codec::g729 && p.encoder.g729_annex_b && s->frames_per_packet != 80)
      throw std::runtime_error(
          "--dtx with G.729 needs --ptime 10ms (a SID frame ends a payload, RFC 3551 §4.5.6)");
    s->ticks_per_packet = static_cast<int>(s->frames_per_packet / f.frames_per_tick());
    s->dest = p.dests[p.dests.size() == 1 ? 0 : k];
    s->ssrc =
        o.ssrc_set ? o.ssrc + static_cast<std::uint32_t>(k) : (std::uint32_t{rd()} << 16) ^ rd();
    s->pt = o.pt >= 0 ? o.pt : default_pt(f);
    if (o.red_pt >= 0) {
      if (o.raw) throw std::runtime_error("--red: headerless PCM has no payload types");
      if (o.red_pt == s->pt)
        throw std::runtime_error("--red " + std::to_string(o.red_pt) +
                                 ": the RED payload type must differ from the codec's (--pt)");
      s->red_pt = o.red_pt;
    }
    s->seq = static_cast<std::uint16_t>(rd());
    s->ts_base = static_cast<std::uint32_t>(rd());
    s->media_offset = s->ts_base;
    s->enc = make_encoder(f, p.encoder);
    FaultConfig fc = p.faults;
    fc.seed = p.faults.seed + k;  // each stream its own, still reproducible, faults
    fc.reorder_delay_ns = frames_to_ns(s->frames_per_packet, f.audio_rate) * 3 / 2;
    s->injector = std::make_unique<FaultInjector>(fc);
    if (!o.trace_out.empty()) {
      const std::string path = k == 0 ? o.trace_out : o.trace_out + "." + std::to_string(k);
      s->trace.open(path, std::ios::trunc);
      if (!s->trace) throw std::runtime_error("cannot write --trace-out " + path);
    }
    streams.push_back(std::move(s));
  }
  return streams;
}

}  // namespace rtpnode::rtpsend
