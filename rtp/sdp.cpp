#include "rtp/sdp.hpp"

#include "rtp/text_fields.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace rtpnode {
namespace {

std::string_view trim(std::string_view s) {
  return trim_blanks(s);
}

std::vector<std::string_view> words(std::string_view s) {
  return blank_separated_words(s);
}

bool parse_int(std::string_view s, int& out) {
  if (s.empty() || s.size() > 9) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc{} && r.ptr == s.data() + s.size() && out >= 0;
}

bool is_ip_literal(const std::string& a) {
  unsigned char buf[16];
  return inet_pton(AF_INET, a.c_str(), buf) == 1 || inet_pton(AF_INET6, a.c_str(), buf) == 1;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

/// What a session- or media-level block sets; media-level values override session-level ones.
struct Level {
  std::string address;
  int ttl = 0;
  std::vector<std::string> sources;
  std::string ts_refclk, mediaclk, direction;
};

/// "IN IP4 ADDR[/TTL[/N]]" -> address and TTL; false when not an IP literal.
bool parse_connection(std::string_view value, Level& level) {
  const auto w = words(value);
  if (w.size() < 3 || w[0] != "IN" || (w[1] != "IP4" && w[1] != "IP6")) return false;
  const std::string_view a = w[2];
  const auto slash = a.find('/');
  std::string addr(a.substr(0, slash));
  if (!is_ip_literal(addr)) return false;
  level.address = std::move(addr);
  level.ttl = 0;
  if (slash != std::string_view::npos && w[1] == "IP4") {
    const std::string_view rest = a.substr(slash + 1);
    int ttl = 0;
    if (parse_int(rest.substr(0, rest.find('/')), ttl)) level.ttl = ttl;
  }
  return true;
}

}  // namespace

std::optional<SessionDescription> parse_sdp(std::string_view text, std::string& error) {
  SessionDescription sd;
  Level session;
  Level media;
  bool in_media = false, in_audio = false;
  std::string session_label;
  auto finish_audio = [&]() -> bool {
    if (!in_audio) return true;
    SdpMedia& m = sd.audio.back();
    m.address = media.address.empty() ? session.address : media.address;
    m.ttl = media.address.empty() ? session.ttl : media.ttl;
    m.source_addresses = media.sources.empty() ? session.sources : media.sources;
    m.ts_refclk = media.ts_refclk.empty() ? session.ts_refclk : media.ts_refclk;
    m.mediaclk = media.mediaclk.empty() ? session.mediaclk : media.mediaclk;
    m.direction = !media.direction.empty()     ? media.direction
                  : !session.direction.empty() ? session.direction
                                               : "sendrecv";
    if (m.label.empty()) m.label = session_label;
    if (m.address.empty()) {
      error = "m=audio " + std::to_string(m.port) + " without a connection address (c=)";
      return false;
    }
    return true;
  };
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() < 2 || line[1] != '=') continue;
    const char type = line[0];
    const std::string_view value = line.substr(2);
    Level& level = in_media ? media : session;
    switch (type) {
      case 'o':
        if (!in_media) sd.origin = std::string(trim(value));
        break;
      case 's':
        if (!in_media) sd.name = session_label = std::string(trim(value));
        break;
      case 'i':
        if (in_audio) sd.audio.back().label = std::string(trim(value));
        break;
      case 'c':
        if (!parse_connection(value, level) && (in_audio || !in_media)) {
          error = "bad connection line 'c=" + std::string(value) + "' (expected IN IP4|IP6 ADDR)";
          return std::nullopt;
        }
        break;
      case 'm': {
        if (!finish_audio()) return std::nullopt;
        in_media = true;
        media = Level{};
        const auto w = words(value);
        in_audio = !w.empty() && w[0] == "audio";
        if (!in_audio) break;
        int port = 0;
        if (w.size() < 4 || !parse_int(w[1].substr(0, w[1].find('/')), port) || port > 65535) {
          error = "bad m= line 'm=" + std::string(value) + "' (expected audio PORT PROTO FMT...)";
          return std::nullopt;
        }
        SdpMedia m;
        m.port = static_cast<std::uint16_t>(port);
        m.protocol = std::string(w[2]);
        for (std::size_t i = 3; i < w.size(); ++i) {
          int pt = 0;
          if (parse_int(w[i], pt) && pt < 128) m.payload_types.push_back(pt);
        }
        sd.audio.push_back(std::move(m));
        break;
      }
      case 'a': {
        const auto colon = value.find(':');
        const std::string_view name = value.substr(0, colon);
        const std::string_view arg =
            colon == std::string_view::npos ? std::string_view{} : trim(value.substr(colon + 1));
        if (name == "sendrecv" || name == "sendonly" || name == "recvonly" || name == "inactive") {
          level.direction = std::string(name);
        } else if (name == "source-filter") {
          // RFC 4570 §3: MODE IN NETTYPE DEST-ADDRESS SRC-LIST
          const auto w = words(arg);
          if (w.size() >= 5 && w[0] == "incl" && w[1] == "IN") {
            for (std::size_t i = 4; i < w.size(); ++i)
              if (is_ip_literal(std::string(w[i]))) level.sources.emplace_back(w[i]);
          } else {
            sd.unsupported.push_back("a=" + std::string(value));
          }
        } else if (name == "ts-refclk") {
          level.ts_refclk = std::string(arg);
        } else if (name == "mediaclk") {
          level.mediaclk = std::string(arg);
        } else if (in_audio) {
          SdpMedia& m = sd.audio.back();
          int pt = 0;
          const auto w = words(arg);
          if (name == "rtpmap" && w.size() >= 2 && parse_int(w[0], pt) && pt < 128) {
            m.rtpmap[pt] = std::string(w[1]);
          } else if (name == "fmtp" && !w.empty() && parse_int(w[0], pt) && pt < 128) {
            m.fmtp[pt] = std::string(trim(arg.substr(w[0].size())));
          } else if (name == "ptime") {
            double ms = 0;
            const auto r = std::from_chars(arg.data(), arg.data() + arg.size(), ms);
            if (r.ec == std::errc{} && ms > 0) m.ptime_ms = ms;
          } else if (name == "rtcp" && !w.empty()) {
            int port = 0;
            if (parse_int(w[0], port) && port > 0 && port <= 65535)
              m.rtcp_port = static_cast<std::uint16_t>(port);
          } else if (name == "rtcp-mux") {
            m.rtcp_mux = true;
          }
        }
        break;
      }
      default:
        break;
    }
  }
  if (!finish_audio()) return std::nullopt;
  if (sd.audio.empty()) {
    error = "no m=audio section";
    return std::nullopt;
  }
  return sd;
}

PayloadMap SdpMedia::payloads(std::vector<std::string>* skipped) const {
  PayloadMap map = PayloadMap::rfc3551();
  for (int pt : payload_types) {
    const auto it = rtpmap.find(pt);
    if (it == rtpmap.end()) {
      if (map.find(static_cast<std::uint8_t>(pt)) == nullptr && skipped)
        skipped->push_back(std::to_string(pt) +
                           ": no a=rtpmap and not a static type rtpnode decodes");
      continue;
    }
    std::string error;
    auto f = format_of(pt, error);
    if (!f) {
      if (skipped) skipped->push_back(std::to_string(pt) + " " + it->second + ": " + error);
      continue;
    }
    map.set(static_cast<std::uint8_t>(pt), *f);
  }
  return map;
}

std::optional<PayloadFormat> SdpMedia::format_of(int pt, std::string& error) const {
  const auto it = rtpmap.find(pt);
  if (it == rtpmap.end()) {
    error = "no a=rtpmap";
    return std::nullopt;
  }
  const auto fp = fmtp.find(pt);
  const std::string params = fp != fmtp.end() ? lower(fp->second) : std::string();
  if (lower(it->second).rfind("red/", 0) == 0) {
    // RFC 2198 §5 (RFC 3555 red): a=fmtp:PT P1/P2/... lists the blocks' payload types, primary
    // first. Decoded when the primary's is an audio format this SDP (or RFC 3551) maps.
    int block_pt = -1;
    const auto slash = params.find('/');
    if (!parse_int(params.substr(0, slash), block_pt) || block_pt < 0 || block_pt > 127) {
      error = "red without an a=fmtp listing its blocks' payload types (RFC 2198 §5)";
      return std::nullopt;
    }
    std::optional<PayloadFormat> blocks;
    const PayloadMap statics = PayloadMap::rfc3551();  // find() points into it
    if (rtpmap.count(block_pt) != 0) {
      if (lower(rtpmap.at(block_pt)).rfind("red/", 0) == 0) {
        error = "red inside red";
        return std::nullopt;
      }
      blocks = format_of(block_pt, error);
    } else if (const PayloadFormat* s = statics.find(static_cast<std::uint8_t>(block_pt))) {
      blocks = *s;
    } else {
      error = "red blocks of payload type " + std::to_string(block_pt) + ", which is not mapped";
    }
    if (!blocks) return std::nullopt;
    if (blocks->codec == Codec::telephone_event) {
      error = "telephone-event in RFC 2198 redundancy is not decoded";
      return std::nullopt;
    }
    blocks->red = true;
    blocks->red_block_pt = static_cast<std::uint8_t>(block_pt);
    return blocks;
  }
  auto f = parse_payload_format(it->second, error);
  if (!f) return std::nullopt;
  auto has = [&](std::string_view p) {  // "name=value" as a whole parameter
    for (std::size_t at = params.find(p); at != std::string::npos; at = params.find(p, at + 1)) {
      const bool start = at == 0 || params[at - 1] == ';' || params[at - 1] == ' ';
      const std::size_t end = at + p.size();
      if (start && (end == params.size() || params[end] == ';' || params[end] == ' ')) return true;
    }
    return false;
  };
  if (f->codec == Codec::opus && has("sprop-stereo=0")) {
    // RFC 7587 §7: the rtpmap always says 2 channels; sprop-stereo=0 says the sender sends
    // mono, which decodes as one channel.
    f->channels = 1;
  }
  if (f->codec == Codec::amr_nb) {
    if (has("octet-align=1")) f->octet_aligned = true;
    if (has("crc=1") || has("robust-sorting=1") ||
        params.find("interleaving") != std::string::npos) {
      error = "AMR with crc, robust-sorting or interleaving is not decoded";
      return std::nullopt;
    }
  }
  return f;
}

std::string SdpMedia::codecs() const {
  std::string out;
  const PayloadMap statics = PayloadMap::rfc3551();
  for (int pt : payload_types) {
    const auto it = rtpmap.find(pt);
    const PayloadFormat* s = statics.find(static_cast<std::uint8_t>(pt));
    const std::string name = it != rtpmap.end() ? it->second
                             : s != nullptr     ? s->describe()
                                                : std::string("unmapped");
    out += (out.empty() ? "" : ", ") + name + " (PT " + std::to_string(pt) + ")";
  }
  return out;
}

}  // namespace rtpnode
