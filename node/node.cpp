#include "node/node.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "rtp/rtcp.hpp"

namespace rtpnode {

namespace {

mono_ns_t now_ns() { return static_cast<mono_ns_t>(uv_hrtime()); }

std::string addr_to_string(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    uv_ip4_name(a, host, sizeof host);
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
  uv_ip6_name(a, host, sizeof host);
  port = ntohs(a->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

/// 48-bit hash of a sender address, for keying headerless sources (no SSRC).
std::uint64_t addr_key(const sockaddr* sa) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  const auto* p = reinterpret_cast<const std::uint8_t*>(sa);
  const std::size_t n = sa->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h & 0xffffffffffffull;
}

bool is_multicast(const std::string& addr) {
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, addr.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 28) == 0xe;
  if (inet_pton(AF_INET6, addr.c_str(), &a6) == 1) return a6.s6_addr[0] == 0xff;
  return false;
}

nlohmann::json source_json(const SourceStats& st, const char* state) {
  char ssrc_hex[16];
  std::snprintf(ssrc_hex, sizeof ssrc_hex, "0x%08" PRIx32, st.ssrc);
  return {{"state", state},
          {"ssrc", st.ssrc},
          {"ssrc_hex", ssrc_hex},
          {"port", st.port},
          {"remote", st.remote},
          {"payload_type", st.payload_type},
          {"payload", st.payload},
          {"packets_received", st.packets_received},
          {"packets_lost", st.packets_lost},
          {"packets_late", st.packets_late},
          {"packets_duplicate", st.packets_duplicate},
          {"packets_malformed", st.packets_malformed},
          {"packets_other_payload_type", st.packets_other_pt},
          {"packets_overflow", st.packets_overflow},
          {"packets_reordered", st.packets_reordered},
          {"packets_comfort_noise", st.packets_comfort_noise},
          {"frames_concealed", st.frames_concealed},
          {"concealment_events", st.concealment_events},
          {"fec_recovered", st.fec_recovered},
          {"expansions", st.expansions},
          {"frames_gap", st.frames_gap},
          {"frames_silent", st.frames_silent},
          {"resyncs", st.resyncs},
          {"underruns", st.underruns},
          {"underrun_frames", st.underrun_frames},
          {"frames_played", st.frames_played},
          {"frames_skipped", st.frames_skipped},
          {"jitter_ms", st.jitter_ms},
          {"latency_mode", st.adaptive ? "auto" : "fixed"},
          {"target_delay_ms", st.target_delay_ms},
          {"playout_delay_ms", st.playout_delay_ms},
          {"speed", st.speed},
          {"drift_ppm", st.drift_ppm},
          {"drift_integral_ppm", st.drift_integral_ppm},
          {"arrival_to_dac_ms", st.arrival_to_dac_ms},
          {"buffered_ms", st.buffered_ms},
          {"synced", st.synced},
          {"sync_error_ms", st.sync_error_ms},
          {"capture_to_dac_ms", st.capture_to_dac_ms},
          {"offset_ms", st.offset_ms},
          {"gain_db", st.gain_db},
          {"muted", st.muted},
          {"route", st.route},
          {"sender_reports", st.sender_reports},
          {"placements", st.placements},
          {"flushes", st.flushes}};
}

constexpr std::size_t kWarnUnknownPt = kRtpParseStatusCount;
constexpr std::size_t kWarnRefused = kRtpParseStatusCount + 1;
constexpr std::size_t kWarnCount = kRtpParseStatusCount + 2;

}  // namespace

Node::Node(NodeConfig cfg)
    : cfg_(std::move(cfg)), clock_(48000), warned_(kWarnCount, false) {
  // Sockets first: a port in use is reported without touching the audio device.
  uv_loop_init(&loop_);
  try {
    bind_all();
    backend_ = std::make_unique<PortAudioBackend>(cfg_);
    // Ramps of 5 ms on join, leave, mute, gain and route changes (issue #4: "nothing clicks").
    ramp_frames_ = static_cast<frames_t>(std::llround(backend_->sample_rate() * 0.005));
    // Twice the sources: a source being placed again briefly has its old and new ring.
    mixer_ = std::make_unique<Mixer>(backend_->channels(), 2 * static_cast<std::size_t>(cfg_.max_sources), ramp_frames_);
    backend_->open(*mixer_);
  } catch (...) {
    close_loop();
    throw;
  }
  clock_ = DeviceClock(backend_->sample_rate());
}

void Node::close_loop() {
  uv_walk(&loop_, [](uv_handle_t* h, void*) { if (!uv_is_closing(h)) uv_close(h, nullptr); }, nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

Node::~Node() {
  backend_->stop();
  close_loop();
}

void Node::bind_all() {
  for (const auto& spec : cfg_.listens) {
    // Owned by listeners_ from the start: a failed bind throws, and close_loop() then still finds
    // the handle it walks alive.
    listeners_.push_back(std::make_unique<Listener>());
    Listener* l = listeners_.back().get();
    l->node = this;
    l->spec = spec;
    const bool v6 = spec.address.find(':') != std::string::npos;
    const bool mcast = is_multicast(spec.address);
    sockaddr_storage ss{};
    int rc = 0;
    // A multicast group is joined on a socket bound to the wildcard address of its family.
    const std::string bind_addr = mcast ? (v6 ? "::" : "0.0.0.0") : spec.address;
    if (v6) rc = uv_ip6_addr(bind_addr.c_str(), spec.port, reinterpret_cast<sockaddr_in6*>(&ss));
    else rc = uv_ip4_addr(bind_addr.c_str(), spec.port, reinterpret_cast<sockaddr_in*>(&ss));
    if (rc == 0) rc = uv_udp_init_ex(&loop_, &l->handle, v6 ? AF_INET6 : AF_INET);
    l->handle.data = l;
    if (rc == 0) rc = uv_udp_bind(&l->handle, reinterpret_cast<const sockaddr*>(&ss), mcast ? UV_UDP_REUSEADDR : 0);
    if (rc != 0) {
      throw std::runtime_error("--listen " + spec.describe() + ": cannot bind: " + uv_strerror(rc) +
                               (rc == UV_EADDRINUSE ? " (another program uses this port; pick another)" : ""));
    }
    if (mcast) {
      rc = uv_udp_set_membership(&l->handle, spec.address.c_str(), nullptr, UV_JOIN_GROUP);
      if (rc != 0) throw std::runtime_error("--listen " + spec.describe() + ": cannot join group: " + uv_strerror(rc));
    }
    int rcvbuf = 1 << 20;  // absorb bursts while the loop renders
    uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(&l->handle), &rcvbuf);
    // RTCP on the next port (RFC 3550 §11). Without it, sync and BYE need RTCP muxed on the
    // RTP port (RFC 5761), which is read there too.
    if (!spec.raw && spec.port < 65535) {
      sockaddr_storage rs = ss;
      if (v6) reinterpret_cast<sockaddr_in6*>(&rs)->sin6_port = htons(static_cast<std::uint16_t>(spec.port + 1));
      else reinterpret_cast<sockaddr_in*>(&rs)->sin_port = htons(static_cast<std::uint16_t>(spec.port + 1));
      int r2 = uv_udp_init_ex(&loop_, &l->rtcp, v6 ? AF_INET6 : AF_INET);
      l->rtcp.data = l;
      if (r2 == 0) r2 = uv_udp_bind(&l->rtcp, reinterpret_cast<const sockaddr*>(&rs), mcast ? UV_UDP_REUSEADDR : 0);
      if (r2 == 0 && mcast) r2 = uv_udp_set_membership(&l->rtcp, spec.address.c_str(), nullptr, UV_JOIN_GROUP);
      if (r2 == 0) {
        l->has_rtcp = true;
      } else {
        std::cerr << "rtpnode: warning: --listen " << spec.describe() << ": no RTCP on port " << spec.port + 1 << ": "
                  << uv_strerror(r2) << " (sync and BYE only with RTCP muxed on the RTP port)\n";
      }
    }
  }
}

template <typename MakeText>
void Node::warn_once(std::size_t kind, MakeText&& make_text) {
  if (warned_[kind]) return;  // the text is only built when it is printed: floods cost nothing
  warned_[kind] = true;
  std::cerr << "rtpnode: warning: " << make_text() << " (counted; further ones are not logged)\n";
}

Source* Node::find_or_create(std::uint64_t key, Listener& l, const sockaddr* from, std::uint32_t ssrc,
                             std::uint8_t pt, const PayloadFormat& fmt, bool raw, mono_ns_t now) {
  if (auto it = sources_.find(key); it != sources_.end()) return it->second.get();
  if (static_cast<int>(sources_.size() + retiring_.size()) >= cfg_.max_sources) {
    ++stats_.sources_refused;
    warn_once(kWarnRefused, [&] { return "new stream refused: --max-sources " + std::to_string(cfg_.max_sources) + " reached"; });
    return nullptr;
  }
  Source::Params p;
  p.id = next_id_++;
  p.ssrc = ssrc;
  p.port = l.spec.port;
  p.remote = addr_to_string(from);
  p.payload_type = pt;
  p.format = fmt;
  p.raw = raw;
  p.device_rate = backend_->sample_rate();
  p.lead_frames = lead_frames_;
  p.playout.adaptive = cfg_.latency_auto;
  p.playout.drift_compensation = cfg_.drift_compensation;
  if (!cfg_.latency_auto) p.playout.start_delay_ns = cfg_.latency.count();
  p.playout.min_delay_ns = cfg_.min_latency.count();
  p.playout.max_delay_ns = cfg_.max_latency.count();
  const PlayoutProfile& prof = cfg_.music ? kMusicProfile : kSpeechProfile;
  p.playout.estimator.quantile = cfg_.jitter_quantile > 0 ? cfg_.jitter_quantile : prof.quantile;
  p.playout.estimator.memory_ns = prof.memory_ns;
  p.resampler_quality = cfg_.resampler_quality;
  const SourceSettings set = cfg_.settings_for(l.spec.port, ssrc, !raw);
  p.mixer = mixer_.get();
  p.ramp_frames = ramp_frames_;
  p.timeline = cfg_.sync_rtcp && !raw ? &timeline_ : nullptr;
  p.offset_frames = ns_to_frames(set.offset.count(), static_cast<std::int64_t>(std::llround(backend_->sample_rate())));
  p.route = set.route;
  p.device_channels = backend_->channels();
  p.gain_db = set.gain_db;
  std::unique_ptr<Source> s;
  try {
    s = std::make_unique<Source>(p, now, clock_);
  } catch (const std::exception& e) {
    ++stats_.sources_refused;
    warn_once(kWarnRefused, [&] { return std::string("cannot create source: ") + e.what(); });
    return nullptr;
  }
  if (auto it = sender_reports_.find(key); it != sender_reports_.end()) s->on_sender_report(it->second.ntp_ns, it->second.rtp_ts);
  char ssrc_hex[16];
  std::snprintf(ssrc_hex, sizeof ssrc_hex, "0x%08" PRIx32, ssrc);
  std::cerr << "rtpnode: new source " << (raw ? std::string("raw") : std::string("ssrc ") + ssrc_hex) << " from "
            << p.remote << " on port " << p.port << ": " << fmt.describe() << "\n";
  Source* raw_ptr = s.get();
  source_order_.push_back(raw_ptr);
  sources_.emplace(key, std::move(s));
  update_timeline();  // before its first packet anchors it
  return raw_ptr;
}

void Node::on_datagram(Listener& l, std::span<const std::uint8_t> data, const sockaddr* from) {
  ++stats_.datagrams;
  const mono_ns_t now = now_ns();
  if (l.spec.raw) {
    if (data.empty()) return;
    const std::uint64_t key = (1ull << 63) | (std::uint64_t{l.spec.port} << 48) | addr_key(from);
    if (Source* s = find_or_create(key, l, from, 0, 255, *l.spec.raw, true, now)) {
      s->on_raw(data, now, clock_);
      s->render(clock_, now);
    }
    return;
  }
  RtpHeaderView h;
  const RtpParseStatus st = rtp_parse(data, h);
  if (st == RtpParseStatus::rtcp) {
    ++stats_.rejected[static_cast<std::size_t>(st)];
    on_rtcp(l, data);  // RFC 5761: RTCP muxed on the RTP port
    return;
  }
  if (st != RtpParseStatus::ok) {
    ++stats_.rejected[static_cast<std::size_t>(st)];
    if (st != RtpParseStatus::rtcp)
      warn_once(static_cast<std::size_t>(st), [&] {
        return "dropped malformed RTP from " + addr_to_string(from) + " on port " + std::to_string(l.spec.port) +
               ": " + std::string(to_string(st));
      });
    return;
  }
  const std::uint64_t key = (std::uint64_t{l.spec.port} << 32) | h.ssrc;
  auto it = sources_.find(key);
  if (it != sources_.end()) {
    it->second->on_rtp(h, now, clock_);
    it->second->render(clock_, now);
    return;
  }
  const PayloadFormat* fmt = cfg_.payloads.find(h.payload_type);
  if (!fmt) {
    ++stats_.unknown_payload_type;
    warn_once(kWarnUnknownPt, [&] {
      return "dropped RTP with unknown payload type " + std::to_string(h.payload_type) + " from " +
             addr_to_string(from) + " (map it with --payload " + std::to_string(h.payload_type) +
             "=CODEC/RATE/CHANNELS)";
    });
    return;
  }
  on_new_ssrc(l, key, h, data, from, *fmt, now);
}

void Node::on_new_ssrc(Listener& l, std::uint64_t key, const RtpHeaderView& h, std::span<const std::uint8_t> data,
                       const sockaddr* from, const PayloadFormat& fmt, mono_ns_t now) {
  // RFC 3550 A.1: a new SSRC is admitted after MIN_SEQUENTIAL = 2 packets in sequence; the
  // first is held and played too. Stray packets (a scan, a spoofed SSRC) never create a source.
  auto it = probation_.find(key);
  if (it == probation_.end()) {
    const std::size_t limit = 4 * static_cast<std::size_t>(cfg_.max_sources) + 16;
    if (probation_.size() >= limit) {
      // Forget candidates that never followed up (more than a second old).
      std::erase_if(probation_, [now](const auto& kv) { return now - kv.second.first_arrival > 1'000'000'000; });
      if (probation_.size() >= limit) {
        ++stats_.probation_dropped;
        return;
      }
    }
    probation_.emplace(key, Probation{std::vector<std::uint8_t>(data.begin(), data.end()), now, h.sequence_number});
    return;
  }
  Probation& pr = it->second;
  if (h.sequence_number != static_cast<std::uint16_t>(pr.last_seq + 1)) {
    pr = Probation{std::vector<std::uint8_t>(data.begin(), data.end()), now, h.sequence_number};  // start over
    return;
  }
  const Probation held = std::move(pr);
  probation_.erase(it);
  if (Source* s = find_or_create(key, l, from, h.ssrc, h.payload_type, fmt, false, held.first_arrival)) {
    RtpHeaderView first;
    if (rtp_parse(held.first, first) == RtpParseStatus::ok) s->on_rtp(first, held.first_arrival, clock_);
    s->on_rtp(h, now, clock_);
    s->render(clock_, now);
  }
}

void Node::update_timeline() {
  if (!cfg_.sync_rtcp) return;
  std::size_t with_sr = 0;
  for (const Source* s : source_order_) with_sr += s->has_sender_report() ? 1 : 0;
  if (with_sr < 2) {
    timeline_.set = false;
    return;
  }
  if (timeline_.set) return;
  for (const Source* s : source_order_)
    if (s->define_timeline(timeline_)) {
      std::cerr << "rtpnode: NTP timeline on (" << with_sr << " sources with RTCP SR), defined by "
                << s->params().remote << "\n";
      return;
    }
}

void Node::on_rtcp(Listener& l, std::span<const std::uint8_t> data) {
  RtcpCompound c;
  if (rtcp_parse(data, c) != RtcpParseStatus::ok) {
    ++stats_.rtcp_malformed;
    return;
  }
  ++stats_.rtcp_packets;
  for (const RtcpSenderReport& sr : c.sender_reports) {
    ++stats_.sender_reports;
    const std::uint64_t key = (std::uint64_t{l.spec.port} << 32) | sr.ssrc;
    const HeldSenderReport held{ntp64_to_ns(sr.ntp), sr.rtp_ts};
    if (sender_reports_.size() > 8 * static_cast<std::size_t>(cfg_.max_sources) + 64) sender_reports_.clear();
    sender_reports_[key] = held;
    if (auto it = sources_.find(key); it != sources_.end()) it->second->on_sender_report(held.ntp_ns, held.rtp_ts);
  }
  update_timeline();
  for (std::uint32_t ssrc : c.byes) {
    ++stats_.byes;
    const std::uint64_t key = (std::uint64_t{l.spec.port} << 32) | ssrc;
    sender_reports_.erase(key);
    probation_.erase(key);
    if (auto it = sources_.find(key); it != sources_.end()) it->second->on_bye();
  }
}

void Node::tick() {
  const DevicePosition pos = mixer_->position();
  clock_.update(pos, backend_->stream_time(), now_ns());
  if (!clock_.valid()) return;
  if (!receiving_) {
    // Start receiving once the device runs: sources are anchored on its frame counter.
    if (lead_frames_ == 0) {
      const frames_t period = pos.block_frames > 0 ? pos.block_frames : 256;
      lead_frames_ = cfg_.render_lead.count() > 0 ? ns_to_frames(cfg_.render_lead.count(), static_cast<std::int64_t>(clock_.rate()))
                                                  : period + ns_to_frames(10'000'000, static_cast<std::int64_t>(clock_.rate()));
    }
    for (auto& l : listeners_) {
      uv_udp_recv_start(
          &l->handle,
          [](uv_handle_t* h, size_t, uv_buf_t* buf) {
            auto* lst = static_cast<Listener*>(h->data);
            *buf = uv_buf_init(lst->buf.data(), static_cast<unsigned>(lst->buf.size()));
          },
          [](uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned) {
            if (nread < 0 || addr == nullptr) return;
            auto* lst = static_cast<Listener*>(h->data);
            lst->node->on_datagram(*lst, {reinterpret_cast<const std::uint8_t*>(buf->base), static_cast<std::size_t>(nread)},
                                   addr);
          });
      if (l->has_rtcp)
        uv_udp_recv_start(
            &l->rtcp,
            [](uv_handle_t* h, size_t, uv_buf_t* buf) {
              auto* lst = static_cast<Listener*>(h->data);
              *buf = uv_buf_init(lst->rtcp_buf.data(), static_cast<unsigned>(lst->rtcp_buf.size()));
            },
            [](uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned) {
              if (nread <= 0 || addr == nullptr) return;
              auto* lst = static_cast<Listener*>(h->data);
              lst->node->on_rtcp(*lst, {reinterpret_cast<const std::uint8_t*>(buf->base), static_cast<std::size_t>(nread)});
            });
    }
    receiving_ = true;
  }
  const mono_ns_t now = now_ns();
  for (Source* s : source_order_) s->render(clock_, now);
  expire_sources(now);
}

void Node::expire_sources(mono_ns_t now) {
  while (mixer_->take_retired() != nullptr) {
    // Sources watch their own streams' `detached` flags; the retire ring only needs draining.
  }
  for (auto it = retiring_.begin(); it != retiring_.end();) {
    if (!(*it)->drained()) {
      ++it;
      continue;
    }
    if ((*it)->bye()) std::cerr << "rtpnode: source " << (*it)->params().remote << " drained after BYE\n";
    departed_.push_back((*it)->stats());  // final: its last audio has played
    if (departed_.size() > kMaxDeparted) departed_.pop_front();
    it = retiring_.erase(it);
  }
  if (now - last_timeout_check_ < 100'000'000 && std::none_of(source_order_.begin(), source_order_.end(), [](const Source* s) { return s->leaving(); }))
    return;  // every 100 ms is plenty for timeouts
  last_timeout_check_ = now;
  const std::int64_t timeout = cfg_.source_timeout.count();
  for (auto it = sources_.begin(); it != sources_.end();) {
    Source* s = it->second.get();
    const bool timed_out = timeout > 0 && now - s->last_arrival() >= timeout && !s->leaving();
    if (!timed_out && !s->leaving()) {
      ++it;
      continue;
    }
    if (timed_out) {
      std::cerr << "rtpnode: source " << s->stats().payload << " from " << s->params().remote << " timed out after "
                << std::chrono::duration<double>(cfg_.source_timeout).count() << " s without packets\n";
      s->leave();
    } else {
      std::cerr << "rtpnode: source " << s->stats().payload << " from " << s->params().remote
                << " said BYE; its queued audio plays out\n";
    }
    source_order_.erase(std::find(source_order_.begin(), source_order_.end(), s));
    retiring_.push_back(std::move(it->second));
    it = sources_.erase(it);
    update_timeline();
  }
}

void Node::write_json() const {
  using nlohmann::json;
  json j;
  json node;
  node["callbacks"] = stats_.callbacks;
  node["xruns"] = stats_.xruns;
  node["datagrams"] = stats_.datagrams;
  json rejected = json::object();
  for (std::size_t i = 0; i < kRtpParseStatusCount; ++i)
    if (i != static_cast<std::size_t>(RtpParseStatus::ok))
      rejected[std::string(to_string(static_cast<RtpParseStatus>(i)))] = stats_.rejected[i];
  node["packets_rejected"] = rejected;
  std::uint64_t malformed = 0;
  for (std::size_t i = 0; i < kRtpParseStatusCount; ++i)
    if (i != static_cast<std::size_t>(RtpParseStatus::ok) && i != static_cast<std::size_t>(RtpParseStatus::rtcp))
      malformed += stats_.rejected[i];
  node["packets_malformed"] = malformed;
  node["packets_unknown_payload_type"] = stats_.unknown_payload_type;
  node["sources_refused"] = stats_.sources_refused;
  node["sources_on_probation"] = probation_.size();
  node["probation_dropped"] = stats_.probation_dropped;
  node["rtcp_packets"] = stats_.rtcp_packets;
  node["rtcp_malformed"] = stats_.rtcp_malformed;
  node["sender_reports"] = stats_.sender_reports;
  node["byes"] = stats_.byes;
  node["sync"] = cfg_.sync_rtcp ? "rtcp" : "none";
  node["sources_active"] = source_order_.size();
  node["sample_rate"] = clock_.rate();
  node["device_skew_ppm"] = clock_.skew() * 1e6;  // device clock vs monotonic clock (DeviceClock)
  node["device"] = backend_->describe();
  node["output_latency_ms"] = static_cast<double>(clock_.output_latency_frames()) * 1000.0 / clock_.rate();
  node["pa_output_latency_ms"] = backend_->output_latency() * 1000.0;  // Pa_GetStreamInfo, for comparison
  node["render_lead_ms"] = static_cast<double>(lead_frames_) * 1000.0 / clock_.rate();
  node["uptime_s"] = static_cast<double>(now_ns() - started_ns_) * 1e-9;
  j["node"] = node;
  json sources = json::array();
  for (const Source* s : source_order_) sources.push_back(source_json(s->stats(), "active"));
  for (const auto& s : retiring_) sources.push_back(source_json(s->stats(), "leaving"));
  for (const SourceStats& st : departed_) sources.push_back(source_json(st, "departed"));
  j["sources"] = sources;
  const std::string tmp = cfg_.stats_json + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << j.dump(2) << "\n";
    if (!f) {
      std::cerr << "rtpnode: cannot write --stats-json " << cfg_.stats_json << "\n";
      return;
    }
  }
  std::rename(tmp.c_str(), cfg_.stats_json.c_str());  // atomic replace: readers never see half a file
}

void Node::report(bool final) {
  const DevicePosition pos = mixer_->position();
  stats_.callbacks = pos.callbacks;
  stats_.xruns = mixer_->xruns();
  if (!cfg_.stats_json.empty()) write_json();
  if (cfg_.quiet && !final) return;
  std::ostringstream line;
  char buf[256];
  std::snprintf(buf, sizeof buf, "[%7.1fs] cb=%" PRIu64 " xruns=%" PRIu64 " sources=%zu",
                static_cast<double>(now_ns() - started_ns_) * 1e-9, stats_.callbacks, stats_.xruns, source_order_.size());
  line << buf;
  std::uint64_t bad = 0;
  for (std::size_t i = 0; i < kRtpParseStatusCount; ++i)
    if (i != static_cast<std::size_t>(RtpParseStatus::rtcp)) bad += stats_.rejected[i];
  if (bad || stats_.unknown_payload_type) line << " malformed=" << bad << " unknown_pt=" << stats_.unknown_payload_type;
  for (const Source* s : source_order_) {
    const SourceStats st = s->stats();
    std::snprintf(buf, sizeof buf,
                  " | %08" PRIx32 " %s rx=%" PRIu64 " lost=%" PRId64 " late=%" PRIu64 " dup=%" PRIu64
                  " conc=%.0fms under=%" PRIu64 " jit=%.1fms jb=%.0f/%.0fms e2e=%.1fms drift=%+.1fppm",
                  st.ssrc, st.payload.c_str(), st.packets_received, st.packets_lost, st.packets_late,
                  st.packets_duplicate, static_cast<double>(st.frames_concealed) * 1000.0 / s->params().format.audio_rate,
                  st.underruns, st.jitter_ms, st.playout_delay_ms, st.target_delay_ms, st.arrival_to_dac_ms, st.drift_ppm);
    line << buf;
  }
  std::cerr << line.str() << (final ? " (final)" : "") << "\n";
}

void Node::stop() { uv_stop(&loop_); }

int Node::run() {
  backend_->start();
  started_ns_ = now_ns();
  std::cerr << "rtpnode: playing on " << backend_->describe() << ", latency ";
  if (cfg_.latency_auto)
    std::cerr << "auto (" << (cfg_.music ? "music" : "speech") << ", "
              << std::chrono::duration<double, std::milli>(cfg_.min_latency).count() << "-"
              << std::chrono::duration<double, std::milli>(cfg_.max_latency).count() << " ms)";
  else
    std::cerr << std::chrono::duration<double, std::milli>(cfg_.latency).count() << " ms";
  std::cerr << "; listening on";
  for (const auto& l : cfg_.listens) std::cerr << " " << l.describe();
  std::cerr << "\n";

  uv_timer_init(&loop_, &render_timer_);
  render_timer_.data = this;
  // The render timer runs at least twice per device period (and at least every 5 ms).
  const int period_ms = backend_->period() > 0 ? static_cast<int>(backend_->period() * 1000 / backend_->sample_rate()) : 5;
  const auto render_every = static_cast<std::uint64_t>(std::clamp(period_ms / 2, 1, 5));
  uv_timer_start(&render_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->tick(); }, 0, render_every);

  if (cfg_.stats_interval.count() > 0) {
    uv_timer_init(&loop_, &stats_timer_);
    stats_timer_.data = this;
    const auto every = static_cast<std::uint64_t>(std::max<std::int64_t>(1, cfg_.stats_interval.count() / 1'000'000));
    uv_timer_start(&stats_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->report(false); }, every, every);
  }
  if (cfg_.duration) {
    uv_timer_init(&loop_, &stop_timer_);
    stop_timer_.data = this;
    uv_timer_start(&stop_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->stop(); },
                   static_cast<std::uint64_t>(cfg_.duration->count() / 1'000'000), 0);
  }
  for (auto* sig : {&sigint_, &sigterm_}) {
    uv_signal_init(&loop_, sig);
    sig->data = this;
  }
  auto on_signal = [](uv_signal_t* s, int) { static_cast<Node*>(s->data)->stop(); };
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);

  uv_run(&loop_, UV_RUN_DEFAULT);
  backend_->stop();
  report(true);
  return 0;
}

}  // namespace rtpnode
