#include "node/demux.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "node/event_watcher.hpp"
#include "node/net_address.hpp"
#include "rtp/rtcp.hpp"

namespace rtpnode {

namespace {

constexpr std::size_t kWarnUnknownPt = kRtpParseStatusCount;
constexpr std::size_t kWarnRtcpForeign = kRtpParseStatusCount + 1;
constexpr std::size_t kWarnNotAllowed = kRtpParseStatusCount + 2;
constexpr std::size_t kWarnSsrcCollision = kRtpParseStatusCount + 3;
constexpr std::size_t kWarnCount = kRtpParseStatusCount + 4;

}  // namespace

Demux::Demux(const NodeConfig& cfg, SourceTable& sources, RtcpSession& rtcp, std::ostream& log)
    : cfg_(cfg), sources_(sources), rtcp_(rtcp), log_(log), warned_(kWarnCount, false) {}

void Demux::on_datagram(const ReceivedDatagram& d, const DeviceClock& clock) {
  const ListenSpec& spec = cfg_.listens[d.listen];
  if (d.rtcp_port)
    on_rtcp(spec, d.bytes, d.from, d.arrival);
  else
    on_rtp_port(spec, d.bytes, d.from, d.arrival, clock);
}

template <typename MakeText>
void Demux::warn_once(std::size_t kind, MakeText&& make_text) {
  if (warned_[kind]) return;  // the text is only built when it is printed: floods cost nothing
  warned_[kind] = true;
  log_ << "rtpnode: warning: " << make_text() << " (counted; further ones are not logged)\n";
}

bool Demux::allowed(const sockaddr* from) {
  if (cfg_.allow.empty() || std::any_of(cfg_.allow.begin(), cfg_.allow.end(),
                                        [&](const Cidr& c) { return c.contains(from); }))
    return true;
  ++stats_.not_allowed;
  warn_once(kWarnNotAllowed, [&] {
    return "datagrams from " + address_text(from) + " dropped: not in any --allow block";
  });
  return false;
}

void Demux::on_rtp_port(const ListenSpec& spec, std::span<const std::uint8_t> data,
                        const sockaddr* from, mono_ns_t now, const DeviceClock& clock) {
  ++stats_.datagrams;
  if (!allowed(from)) return;
  rtcp_.on_datagram(data.size(), now);
  if (spec.raw) {
    if (data.empty()) return;
    const std::uint64_t key = raw_source_key(spec.port, from);
    Source* s = sources_.find(key);
    if (s == nullptr) s = sources_.raw_source(key, spec.port, from, *spec.raw, now, &spec);
    if (s != nullptr) {
      s->on_raw(data, now, clock);
      s->render(clock, now);
    }
    return;
  }
  RtpHeaderView h;
  const RtpParseStatus st = rtp_parse(data, h);
  if (st == RtpParseStatus::rtcp) {
    ++stats_.rejected[static_cast<std::size_t>(st)];
    on_rtcp(spec, data, from, now);  // RFC 5761: RTCP muxed on the RTP port
    return;
  }
  if (st != RtpParseStatus::ok) {
    ++stats_.rejected[static_cast<std::size_t>(st)];
    if (st != RtpParseStatus::rtcp)
      warn_once(static_cast<std::size_t>(st), [&] {
        return "dropped malformed RTP from " + address_text(from) + " on port " +
               std::to_string(spec.port) + ": " + std::string(to_string(st));
      });
    return;
  }
  std::uint64_t key = source_key(spec.port, h.ssrc);
  bool collision = false;
  if (const Source* first = sources_.find(key);
      first != nullptr &&
      !same_transport(from, reinterpret_cast<const sockaddr*>(&first->params().remote_addr))) {
    // Another sender already plays under this SSRC: this one is a source of its own.
    key = collision_key(key, from);
    collision = true;
  }
  const PayloadFormat* fmt =
      spec.payloads ? spec.payloads->find(h.payload_type) : cfg_.payloads.find(h.payload_type);
  if (fmt != nullptr && fmt->codec == Codec::telephone_event) {
    on_telephone_event(spec, h, from, fmt->clock_rate, now);
    // Under the audio's SSRC the events share its sequence numbers (RFC 4733 §2.1): the
    // source counts them (packets_other_payload_type), so that they are not taken for loss.
    if (Source* s = sources_.find(key)) s->on_rtp(h, now, clock);
    return;
  }
  if (Source* s = sources_.find(key)) {
    s->on_rtp(h, now, clock);
    s->render(clock, now);
    return;
  }
  if (!fmt) {
    ++stats_.unknown_payload_type;
    warn_once(kWarnUnknownPt, [&] {
      return "dropped RTP with unknown payload type " + std::to_string(h.payload_type) + " from " +
             address_text(from) + " (map it with --payload " + std::to_string(h.payload_type) +
             "=CODEC/RATE/CHANNELS)";
    });
    return;
  }
  if (auto admitted = sources_.on_candidate(key, spec.port, h, data, from, *fmt, now, &spec)) {
    if (collision) {
      ++stats_.ssrc_collisions;
      warn_once(kWarnSsrcCollision, [&] {
        const Source* first = sources_.find(source_key(spec.port, h.ssrc));
        return "SSRC " + hex32(h.ssrc) + " on port " + std::to_string(spec.port) +
               " is used by two senders (" + (first ? first->params().remote : "?") + " and " +
               address_text(from) +
               "): each plays as a source of its own (RFC 3550 §8.2; counted as ssrc_collisions)";
      });
    }
    RtpHeaderView first;
    if (rtp_parse(admitted->first, first) == RtpParseStatus::ok)
      admitted->source->on_rtp(first, admitted->first_arrival, clock);
    admitted->source->on_rtp(h, now, clock);
    // An RFC 7273 media clock mapped its timestamps at once: it counts as a source with an SR.
    if (admitted->source->has_sender_report()) sources_.update_timeline();
    admitted->source->render(clock, now);
  }
}

void Demux::on_telephone_event(const ListenSpec& spec, const RtpHeaderView& h, const sockaddr* from,
                               std::uint32_t clock_rate, mono_ns_t now) {
  ++stats_.telephone_event_packets;
  const std::uint64_t key = source_key(spec.port, h.ssrc);
  auto it = event_streams_.find(key);
  if (it == event_streams_.end()) {
    if (event_streams_.size() >= 4 * static_cast<std::size_t>(cfg_.max_sources) + 16) return;
    it = event_streams_.emplace(key, EventStream{}).first;
    it->second.listen = static_cast<std::size_t>(&spec - cfg_.listens.data());
    std::memcpy(&it->second.from, from, sockaddr_length(from));
    it->second.clock_rate = clock_rate;
  }
  const auto done = it->second.receiver.on_packet(h.timestamp, h.payload, now);
  for (int i = 0; i < done.count; ++i) {
    ++stats_.telephone_events;
    if (event_sink_)
      event_sink_(done.events[static_cast<std::size_t>(i)], it->second.listen,
                  reinterpret_cast<const sockaddr*>(&it->second.from), h.ssrc, clock_rate);
  }
}

void Demux::flush_events() {
  for (auto& [key, s] : event_streams_)
    if (auto e = s.receiver.flush()) {
      ++stats_.telephone_events;
      if (event_sink_)
        event_sink_(*e, s.listen, reinterpret_cast<const sockaddr*>(&s.from),
                    static_cast<std::uint32_t>(key), s.clock_rate);
    }
}

std::uint64_t Demux::rtcp_key(std::uint16_t port, std::uint32_t ssrc, const sockaddr* from) const {
  const std::uint64_t key = source_key(port, ssrc);
  if (stats_.ssrc_collisions == 0) return key;
  // With colliding senders, RTCP belongs to the one whose RTP port it comes from (muxed) or
  // whose RTP port is one below it (RFC 3550 §11); otherwise to the first.
  sockaddr_storage rtp{};
  std::memcpy(&rtp, from, sockaddr_length(from));
  auto* p4 = reinterpret_cast<sockaddr_in*>(&rtp);
  auto* p6 = reinterpret_cast<sockaddr_in6*>(&rtp);
  for (int back = 0; back <= 1; ++back) {
    if (back == 1) {
      if (rtp.ss_family == AF_INET)
        p4->sin_port = htons(static_cast<std::uint16_t>(ntohs(p4->sin_port) - 1));
      else
        p6->sin6_port = htons(static_cast<std::uint16_t>(ntohs(p6->sin6_port) - 1));
    }
    const auto* a = reinterpret_cast<const sockaddr*>(&rtp);
    if (const Source* s = sources_.find(key);
        s && same_transport(a, reinterpret_cast<const sockaddr*>(&s->params().remote_addr)))
      return key;
    if (const std::uint64_t alt = collision_key(key, a); sources_.find(alt) != nullptr) return alt;
  }
  return key;
}

void Demux::on_rtcp(const ListenSpec& spec, std::span<const std::uint8_t> data,
                    const sockaddr* from, mono_ns_t now) {
  if (!allowed(from)) return;
  RtcpCompound c;
  if (rtcp_parse(data, c) != RtcpParseStatus::ok) {
    ++stats_.rtcp_malformed;
    return;
  }
  ++stats_.rtcp_packets;
  rtcp_.on_compound(data.size());
  // RFC 3550 §8.2: RTCP about a source counts only from the host its RTP comes from; anything
  // else (a spoofed BYE or SR from elsewhere) is counted as rtcp_foreign and ignored.
  auto foreign = [&](const Source& s) {
    if (same_host(from, reinterpret_cast<const sockaddr*>(&s.params().remote_addr))) return false;
    ++stats_.rtcp_foreign;
    warn_once(kWarnRtcpForeign, [&] {
      return "RTCP about source " + s.params().remote + " from another host (" +
             address_text(from) + "): ignored";
    });
    return true;
  };
  for (const RtcpSenderReport& sr : c.sender_reports) {
    ++stats_.sender_reports;
    const std::uint64_t key = rtcp_key(spec.port, sr.ssrc, from);
    Source* s = sources_.find(key);
    if (s != nullptr && foreign(*s)) continue;
    const HeldSenderReport& held = rtcp_.hold(key, sr, from, now);
    if (s != nullptr) s->on_sender_report(held.ntp_ns, held.rtp_ts);
  }
  sources_.update_timeline();
  for (std::uint32_t ssrc : c.byes) {
    ++stats_.byes;
    const std::uint64_t key = rtcp_key(spec.port, ssrc, from);
    Source* s = sources_.find(key);
    if (s != nullptr && foreign(*s)) continue;
    if (const HeldSenderReport* h = rtcp_.held(key);
        h && same_host(from, reinterpret_cast<const sockaddr*>(&h->from)))
      rtcp_.forget(key);
    sources_.on_bye(key, from);
    if (s != nullptr) s->on_bye();
  }
}

}  // namespace rtpnode
