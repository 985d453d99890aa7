#include "node/call_discovery.hpp"

#include "rtp/text_fields.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace rtpnode {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  return trim_blanks(s);
}

/// Splits `text` into lines at LF, dropping a CR before it.
std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

std::vector<std::string_view> words(std::string_view s) {
  return blank_separated_words(s);
}

bool parse_int(std::string_view s, int& out) {
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

std::string address_key(const sockaddr_storage& ss) {
  std::string k;
  if (ss.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(ss);
    k.assign(reinterpret_cast<const char*>(&sin.sin_addr), 4);
    k.append(reinterpret_cast<const char*>(&sin.sin_port), 2);
  } else {
    const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(ss);
    k.assign(reinterpret_cast<const char*>(&sin6.sin6_addr), 16);
    k.append(reinterpret_cast<const char*>(&sin6.sin6_port), 2);
  }
  return k;
}

std::optional<sockaddr_storage> make_address(const std::string& ip, std::uint16_t port) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, ip.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    return ss;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    return ss;
  }
  return std::nullopt;
}

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) << 24 | static_cast<std::uint32_t>(p[1]) << 16 |
         static_cast<std::uint32_t>(p[2]) << 8 | p[3];
}

}  // namespace

std::string endpoint_text(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(ss);
    inet_ntop(AF_INET, &sin.sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(sin.sin_port));
  }
  const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(ss);
  inet_ntop(AF_INET6, &sin6.sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(sin6.sin6_port));
}

std::optional<SdpAudio> parse_sdp_audio(std::string_view body) {
  std::string error;
  auto sd = parse_sdp(body, error);
  if (!sd) return std::nullopt;
  for (SdpMedia& m : sd->audio)
    if (m.port != 0) return std::move(m);
  return std::nullopt;
}

std::optional<SipMessage> parse_sip(std::span<const std::uint8_t> datagram) {
  const std::string_view text(reinterpret_cast<const char*>(datagram.data()), datagram.size());
  auto head_end = text.find("\r\n\r\n");
  std::size_t body_at = head_end == std::string_view::npos ? std::string_view::npos : head_end + 4;
  if (head_end == std::string_view::npos) {
    head_end = text.find("\n\n");
    body_at = head_end == std::string_view::npos ? text.size() : head_end + 2;
  }
  const auto lines = lines_of(text.substr(0, head_end));
  if (lines.empty()) return std::nullopt;
  SipMessage m;
  const auto start = words(lines[0]);
  if (start.size() >= 2 && start[0] == "SIP/2.0") {
    if (!parse_int(start[1], m.status) || m.status < 100 || m.status > 699) return std::nullopt;
  } else if (start.size() == 3 && start[2] == "SIP/2.0") {
    m.request = true;
    m.method = std::string(start[0]);
    for (char c : m.method)
      if (!std::isupper(static_cast<unsigned char>(c))) return std::nullopt;
  } else {
    return std::nullopt;
  }
  // Headers, folded continuation lines (leading whitespace) joined to the one before.
  std::vector<std::pair<std::string, std::string>> headers;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (!headers.empty()) headers.back().second += " " + std::string(trim(line));
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    headers.emplace_back(lower(trim(line.substr(0, colon))),
                         std::string(trim(line.substr(colon + 1))));
  }
  int content_length = -1;
  for (const auto& [name, value] : headers) {
    if (name == "call-id" || name == "i")
      m.call_id = value;
    else if (name == "from" || name == "f")
      m.from = value;
    else if (name == "to" || name == "t")
      m.to = value;
    else if (name == "cseq") {
      const auto w = words(value);
      if (w.size() == 2) m.cseq_method = std::string(w[1]);
    } else if (name == "content-type" || name == "c")
      m.content_type = lower(value.substr(0, value.find(';')));
    else if (name == "content-length" || name == "l")
      parse_int(value, content_length);
  }
  if (m.call_id.empty()) return std::nullopt;
  if (body_at < text.size()) {
    std::string_view body = text.substr(body_at);
    if (content_length >= 0 && static_cast<std::size_t>(content_length) < body.size())
      body = body.substr(0, static_cast<std::size_t>(content_length));
    m.body = std::string(body);
  }
  return m;
}

std::size_t CallDiscovery::call_for(const std::string& id, std::int64_t time_ns) {
  if (auto it = call_index_.find(id); it != call_index_.end()) return it->second;
  if (calls_.size() >= kMaxCalls) return SIZE_MAX;
  DiscoveredCall c;
  c.id = id;
  c.start_ns = time_ns;
  calls_.push_back(std::move(c));
  call_index_[id] = calls_.size() - 1;
  return calls_.size() - 1;
}

CallDiscovery::Result CallDiscovery::on_datagram(const CapturedDatagram& d, bool known) {
  Result out;
  if (!d.payload.empty() && (d.payload[0] >> 6) != 2) {  // not RTP: SIP is text
    if (auto m = parse_sip(d.payload)) {
      out.sip = true;
      ++sip_messages_;
      on_sip(*m, d, out);
      return out;
    }
  }
  if (heuristic_ && !known) on_rtp_candidate(d, out);
  return out;
}

void CallDiscovery::on_sip(const SipMessage& m, const CapturedDatagram& d, Result& out) {
  const std::string cid = "sip:" + m.call_id;
  std::size_t ci = SIZE_MAX;
  if (auto it = call_index_.find(cid); it != call_index_.end()) ci = it->second;
  if (ci == SIZE_MAX) {
    if (!(m.request && m.method == "INVITE")) return;  // a dialog we did not see start
    ci = call_for(cid, d.time_ns);
    if (ci == SIZE_MAX) return;
    DiscoveredCall& c = calls_[ci];
    c.sip = true;
    c.id = m.call_id;
    c.from = m.from;
    c.to = m.to;
    c.caller_signalling = d.source;
  }
  DiscoveredCall& call = calls_[ci];
  if (m.request && m.method == "BYE" && call.end_ns == 0) call.end_ns = d.time_ns;
  if (m.content_type != "application/sdp" || m.body.empty()) return;
  const auto sdp = parse_sdp_audio(m.body);
  if (!sdp) {
    ++sdp_without_audio_;
    return;
  }
  MediaEndpoint e;
  e.address = *make_address(sdp->address, sdp->port);
  if (sdp->address == "0.0.0.0" || sdp->address == "::") return;  // RFC 3264 §8.4: on hold
  e.call = ci;
  // The caller's SDP names where the caller receives: the callee's voice arrives there.
  const bool from_caller = address_key(d.source) == address_key(call.caller_signalling);
  e.side = from_caller ? 1 : 0;
  // The endpoint's own mappings first (RFC 3264 §5.1: what its SDP says it receives), then the
  // call's other SDPs fill the payload types it leaves unmapped: endpoints commonly send what
  // the peer offered although their answer left it out (SIPp's RFC 2833 digits, for one).
  std::vector<std::pair<std::uint8_t, PayloadFormat>> own;
  for (int pt : sdp->payload_types) {
    auto it = sdp->rtpmap.find(pt);
    if (it == sdp->rtpmap.end()) continue;  // a static type without rtpmap: RFC 3551's
    e.codecs += (e.codecs.empty() ? "" : " ") + it->second;
    std::string error;
    if (auto f = sdp->format_of(pt, error)) own.emplace_back(static_cast<std::uint8_t>(pt), *f);
  }
  auto map = std::make_shared<PayloadMap>();
  for (const auto& [pt, f] : own) map->set(pt, f);
  CallMaps& maps = call_maps_[ci];
  for (const auto& [pt, f] : maps.mappings)
    if (map->find(pt) == nullptr) map->set(pt, f);
  for (const auto& other : maps.endpoints)
    for (const auto& [pt, f] : own)
      if (other->find(pt) == nullptr) other->set(pt, f);
  maps.mappings.insert(maps.mappings.end(), own.begin(), own.end());
  maps.endpoints.push_back(map);
  e.payloads = std::move(map);
  out.new_endpoints.push_back(std::move(e));
}

void CallDiscovery::on_rtp_candidate(const CapturedDatagram& d, Result& out) {
  const auto& p = d.payload;
  if (p.size() < 12 || (p[0] >> 6) != 2) return;
  const int pt = p[1] & 0x7f;
  if (pt >= 72 && pt <= 76) return;  // RTCP SR/RR/SDES/BYE/APP (RFC 5761 §4)
  const std::string key = address_key(d.source) + address_key(d.destination);
  const std::uint32_t ssrc = be32(&p[8]);
  const std::uint16_t seq = be16(&p[2]);
  const std::uint32_t ts = be32(&p[4]);
  auto it = std::find_if(candidates_.begin(), candidates_.end(),
                         [&](const Candidate& c) { return c.key == key; });
  if (it == candidates_.end()) {
    if (candidates_.size() >= kMaxCandidates) candidates_.pop_front();
    candidates_.push_back(Candidate{});
    it = std::prev(candidates_.end());
    it->key = key;
  }
  Candidate& c = *it;
  const bool continues = c.count > 0 && ssrc == c.ssrc &&
                         seq == static_cast<std::uint16_t>(c.seq + 1) &&
                         static_cast<std::uint32_t>(ts - c.timestamp) < 0x80000000u;
  if (!continues) {
    c.count = 0;
    c.packets.clear();
  }
  c.ssrc = ssrc;
  c.seq = seq;
  c.timestamp = ts;
  ++c.count;
  if (c.count < kConfirmPackets) {
    c.packets.emplace_back(d.time_ns, std::vector<std::uint8_t>(p.begin(), p.end()));
    out.candidate = true;
    return;
  }
  // Confirmed: an endpoint of a heuristic call, paired with its reverse flow if that is known.
  out.held = std::move(c.packets);
  candidates_.erase(it);
  const std::string reverse = address_key(d.destination) + address_key(d.source);
  MediaEndpoint e;
  e.address = d.destination;
  if (auto r = heuristic_flows_.find(reverse); r != heuristic_flows_.end()) {
    e.call = r->second;
    e.side = 1;
  } else {
    const std::size_t ci =
        call_for("rtp:" + endpoint_text(d.source) + "-" + endpoint_text(d.destination), d.time_ns);
    if (ci == SIZE_MAX) return;
    e.call = ci;
    e.side = 0;
  }
  heuristic_flows_[key] = e.call;
  out.new_endpoints.push_back(std::move(e));
}

}  // namespace rtpnode
