#include "node/config.hpp"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "node/net_address.hpp"
#include "rtp/sdp.hpp"

namespace rtpnode {

std::string ListenSpec::describe() const {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port) +
         (raw ? " (raw " + raw->describe() + ")" : "");
}

std::optional<nanoseconds> parse_duration(std::string_view text, std::string& error) {
  std::size_t unit_pos = 0;
  while (unit_pos < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[unit_pos])) || text[unit_pos] == '.'))
    ++unit_pos;
  const std::string number(text.substr(0, unit_pos));
  const std::string_view unit = text.substr(unit_pos);
  double value = 0;
  auto r = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || r.ec != std::errc{} || r.ptr != number.data() + number.size() ||
      !std::isfinite(value)) {
    error = "bad duration '" + std::string(text) + "' (examples: 40ms, 2s, 1.5s)";
    return std::nullopt;
  }
  double scale = 0;
  if (unit == "ns")
    scale = 1;
  else if (unit == "us")
    scale = 1e3;
  else if (unit == "ms")
    scale = 1e6;
  else if (unit == "s")
    scale = 1e9;
  else if (unit == "m" || unit == "min")
    scale = 60e9;
  else if (unit == "h")
    scale = 3600e9;
  else {
    error = "duration '" + std::string(text) + "' needs a unit: ns, us, ms, s, m or h";
    return std::nullopt;
  }
  // Checked before converting: llround of a value beyond int64 is undefined (issue #16: 1e20 h
  // came out as -9.22e18 ns and passed every range check as a negative number).
  const double ns = value * scale;
  if (!(ns <= static_cast<double>(kMaxDuration.count()))) {
    error = "duration '" + std::string(text) + "' is too long (at most 1000 days)";
    return std::nullopt;
  }
  return nanoseconds(std::llround(ns));
}

std::optional<SourceSelector> parse_selector(std::string_view text, std::string& error) {
  SourceSelector sel;
  sel.text = std::string(text);
  const auto colon = text.find(':');
  const std::string_view kind = text.substr(0, colon == std::string_view::npos ? 0 : colon);
  std::string_view value =
      colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
  int base = 10;
  std::uint64_t v = 0;
  if (kind == "port") {
    sel.kind = SourceSelector::Kind::port;
  } else if (kind == "ssrc") {
    sel.kind = SourceSelector::Kind::ssrc;
    if (value.size() > 2 && value[0] == '0' && (value[1] == 'x' || value[1] == 'X')) {
      value.remove_prefix(2);
      base = 16;
    }
  } else {
    error = "bad source selector '" + std::string(text) + "' (port:N or ssrc:0x1A2B3C4D)";
    return std::nullopt;
  }
  auto r = std::from_chars(value.data(), value.data() + value.size(), v, base);
  const std::uint64_t max = sel.kind == SourceSelector::Kind::port ? 65535 : 0xffffffffull;
  if (value.empty() || r.ec != std::errc{} || r.ptr != value.data() + value.size() || v > max ||
      (sel.kind == SourceSelector::Kind::port && v == 0)) {
    error = "bad source selector '" + std::string(text) + "' (" +
            (sel.kind == SourceSelector::Kind::port ? "port 1..65535"
                                                    : "SSRC: 32-bit, e.g. ssrc:0x1A2B3C4D") +
            ")";
    return std::nullopt;
  }
  sel.value = static_cast<std::uint32_t>(v);
  return sel;
}

namespace {

/// Splits "SEL=VALUE" and parses SEL.
std::optional<SourceRule> split_rule(std::string_view text, std::string_view& value,
                                     std::string& error) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos) {
    error = "expected SELECTOR=VALUE, got '" + std::string(text) + "'";
    return std::nullopt;
  }
  auto sel = parse_selector(text.substr(0, eq), error);
  if (!sel) return std::nullopt;
  value = text.substr(eq + 1);
  SourceRule r;
  r.selector = *sel;
  return r;
}

}  // namespace

std::optional<SourceRule> parse_offset_rule(std::string_view text, std::string& error) {
  std::string_view value;
  auto r = split_rule(text, value, error);
  if (!r) return std::nullopt;
  const bool negative = !value.empty() && value[0] == '-';
  if (!value.empty() && (value[0] == '-' || value[0] == '+')) value.remove_prefix(1);
  auto d = parse_duration(value, error);
  if (!d) return std::nullopt;
  if (*d > std::chrono::seconds(10)) {
    error = "offset '" + std::string(text) + "' is beyond +-10 s";
    return std::nullopt;
  }
  r->offset = negative ? -*d : *d;
  return r;
}

std::optional<SourceRule> parse_route_rule(std::string_view text, int device_channels,
                                           std::string& error) {
  std::string_view value;
  auto r = split_rule(text, value, error);
  if (!r) return std::nullopt;
  if (value == "L")
    r->route = {0};
  else if (value == "R")
    r->route = {1};
  else if (value == "LR")
    r->route = {0, 1};
  else {
    while (!value.empty()) {
      const auto comma = value.find(',');
      const std::string_view item = value.substr(0, comma);
      int ch = 0;
      auto res = std::from_chars(item.data(), item.data() + item.size(), ch);
      if (item.empty() || res.ec != std::errc{} || res.ptr != item.data() + item.size() || ch < 1 ||
          ch > 64) {
        error =
            "bad route '" + std::string(text) + "' (L, R, LR or 1-based device channels like 1,2)";
        return std::nullopt;
      }
      r->route.push_back(ch - 1);
      value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
      if (comma != std::string_view::npos && value.empty()) {
        error = "bad route '" + std::string(text) + "' (trailing comma)";
        return std::nullopt;
      }
    }
  }
  if (r->route.empty()) {
    error = "bad route '" + std::string(text) + "' (L, R, LR or 1-based device channels like 1,2)";
    return std::nullopt;
  }
  for (int ch : r->route)
    if (ch >= device_channels) {
      error = "route '" + std::string(text) + "' names device channel " + std::to_string(ch + 1) +
              " but the device has " + std::to_string(device_channels) + " (--channels)";
      return std::nullopt;
    }
  return r;
}

std::optional<SourceRule> parse_gain_rule(std::string_view text, std::string& error) {
  std::string_view value;
  auto r = split_rule(text, value, error);
  if (!r) return std::nullopt;
  if (value.size() < 3 ||
      (value.substr(value.size() - 2) != "dB" && value.substr(value.size() - 2) != "db")) {
    error = "gain '" + std::string(text) + "' needs the unit dB, e.g. -6dB";
    return std::nullopt;
  }
  value.remove_suffix(2);
  if (!value.empty() && value[0] == '+') value.remove_prefix(1);
  double db = 0;
  auto res = std::from_chars(value.data(), value.data() + value.size(), db);
  if (value.empty() || res.ec != std::errc{} || res.ptr != value.data() + value.size() ||
      !std::isfinite(db) || db < -120 || db > 24) {
    error = "bad gain '" + std::string(text) + "' (-120dB..+24dB)";
    return std::nullopt;
  }
  r->gain_db = db;
  return r;
}

SourceSettings NodeConfig::settings_for(std::uint16_t port, std::uint32_t ssrc,
                                        bool has_ssrc) const {
  SourceSettings out;
  // port: rules first, then ssrc: rules, each in command-line order: the most specific, latest
  // wins.
  for (auto kind : {SourceSelector::Kind::port, SourceSelector::Kind::ssrc}) {
    for (const auto& r : offsets)
      if (r.selector.kind == kind && r.selector.matches(port, ssrc, has_ssrc))
        out.offset = r.offset;
    for (const auto& r : routes)
      if (r.selector.kind == kind && r.selector.matches(port, ssrc, has_ssrc)) out.route = r.route;
    for (const auto& r : gains)
      if (r.selector.kind == kind && r.selector.matches(port, ssrc, has_ssrc))
        out.gain_db = r.gain_db;
  }
  return out;
}

std::optional<ListenSpec> parse_listen(std::string_view text, std::string& error) {
  ListenSpec l;
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      error = "bad listen address '" + std::string(text) + "' (IPv6: [ADDR]:PORT)";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      error =
          "bad listen address '" + std::string(text) + "' (expected ADDR:PORT, e.g. 0.0.0.0:5004)";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || r.ec != std::errc{} || r.ptr != port.data() + port.size() || p == 0 ||
      p > 65535) {
    error = "bad port in '" + std::string(text) + "' (1..65535)";
    return std::nullopt;
  }
  l.address = std::string(host);
  unsigned char buf[16];
  if (inet_pton(AF_INET, l.address.c_str(), buf) != 1 &&
      inet_pton(AF_INET6, l.address.c_str(), buf) != 1) {
    error = "bad IP address '" + l.address + "' in '" + std::string(text) + "'";
    return std::nullopt;
  }
  l.port = static_cast<std::uint16_t>(p);
  return l;
}

}  // namespace rtpnode

namespace rtpnode {

std::optional<Cidr> parse_cidr(std::string_view text, std::string& error) {
  Cidr c;
  c.text = std::string(text);
  const auto slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  if (inet_pton(AF_INET, addr.c_str(), c.bytes.data()) == 1) {
    c.family = AF_INET;
  } else if (inet_pton(AF_INET6, addr.c_str(), c.bytes.data()) == 1) {
    c.family = AF_INET6;
  } else {
    error = "--allow '" + c.text +
            "': not an IPv4 or IPv6 address block (examples: 192.168.1.0/24, 10.0.0.7, fd00::/8)";
    return std::nullopt;
  }
  const int bits = c.family == AF_INET ? 32 : 128;
  c.prefix = bits;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    auto r = std::from_chars(p.data(), p.data() + p.size(), c.prefix);
    if (p.empty() || r.ec != std::errc{} || r.ptr != p.data() + p.size() || c.prefix < 0 ||
        c.prefix > bits) {
      error = "--allow '" + c.text + "': the prefix length must be 0.." + std::to_string(bits);
      return std::nullopt;
    }
  }
  for (int i = c.prefix; i < bits; ++i) {
    if (c.bytes[static_cast<std::size_t>(i / 8)] & (0x80 >> (i % 8))) {
      error =
          "--allow '" + c.text + "': address bits beyond /" + std::to_string(c.prefix) + " are set";
      return std::nullopt;
    }
  }
  return c;
}

bool Cidr::contains(const sockaddr* sa) const noexcept {
  const std::uint8_t* a = nullptr;
  int fam = sa->sa_family;
  if (fam == AF_INET) {
    a = reinterpret_cast<const std::uint8_t*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  } else if (fam == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr;
    a = reinterpret_cast<const std::uint8_t*>(&a6);
    if (family == AF_INET && IN6_IS_ADDR_V4MAPPED(&a6)) {
      a += 12;
      fam = AF_INET;
    }
  }
  if (a == nullptr || fam != family) return false;
  for (int i = 0; i < prefix; ++i) {
    const auto byte = static_cast<std::size_t>(i / 8);
    const int mask = 0x80 >> (i % 8);
    if ((a[byte] & mask) != (bytes[byte] & mask)) return false;
  }
  return true;
}

std::string format_duration(nanoseconds d) {
  const std::int64_t ns = d.count();
  if (ns == 0) return "0s";
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  if (ns % 1'000 == 0) return std::to_string(ns / 1'000) + "us";
  return std::to_string(ns) + "ns";
}

}  // namespace rtpnode

namespace rtpnode {

namespace {
std::string format_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", ms);
  return buf;
}
}  // namespace

std::optional<std::vector<ListenSpec>> listens_from_sdp(
    const std::string& path, const std::vector<std::string>& payload_flags, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": cannot open: " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return listens_from_sdp_text(text, path, payload_flags, error);
}

std::optional<std::vector<ListenSpec>> listens_from_sdp_text(
    std::string_view text, const std::string& path, const std::vector<std::string>& payload_flags,
    std::string& error) {
  if (text.size() > (1u << 20)) {
    error = path + ": larger than 1 MiB: not a session description";
    return std::nullopt;
  }
  std::string err;
  const auto sd = parse_sdp(text, err);
  if (!sd) {
    error = path + ": " + err;
    return std::nullopt;
  }
  std::vector<ListenSpec> out;
  for (const SdpMedia& m : sd->audio) {
    if (m.port == 0) continue;  // declined (RFC 3264 §6)
    if (m.protocol != "RTP/AVP" && m.protocol != "RTP/AVPF") {
      error = path + ": m=audio " + std::to_string(m.port) + " uses " + m.protocol +
              (m.protocol.find("SAVP") != std::string::npos ? " (SRTP: encrypted, not supported)"
                                                            : " (only RTP/AVP and RTP/AVPF)");
      return std::nullopt;
    }
    ListenSpec l;
    const bool v6 = m.address.find(':') != std::string::npos;
    l.address = is_multicast_literal(m.address) ? m.address : (v6 ? "::" : "0.0.0.0");
    l.port = m.port;
    std::vector<std::string> skipped;
    auto map = std::make_shared<PayloadMap>(m.payloads(&skipped));
    for (const auto& p : payload_flags)
      if (!map->apply(p, err)) {
        error = "--payload: " + err;
        return std::nullopt;
      }
    l.payloads = std::move(map);
    if (m.rtcp_port && *m.rtcp_port != m.port + 1 && *m.rtcp_port != m.port)
      l.rtcp_port = m.rtcp_port;
    if (is_multicast_literal(m.address)) l.source_addresses = m.source_addresses;
    std::string summary = path + ": " + (m.label.empty() ? "" : "'" + m.label + "' ") + m.codecs();
    if (m.ptime_ms > 0) summary += ", ptime " + format_ms(m.ptime_ms) + " ms";
    if (!l.source_addresses.empty()) {
      summary += ", senders";
      for (const auto& a : l.source_addresses) summary += " " + a;
    }
    if (l.rtcp_port) summary += ", RTCP on port " + std::to_string(*l.rtcp_port);
    std::string clock_why;
    l.media_clock = media_clock_of(m, &clock_why);
    if (l.media_clock)
      summary += std::string(", timestamps on the ") + l.media_clock->name() +
                 " clock (RFC 7273, offset " + std::to_string(l.media_clock->offset) + ")";
    else if (!clock_why.empty())
      summary += "; not followed: " + clock_why;
    for (const auto& s : skipped) summary += "; not decoded: PT " + s;
    for (const auto& u : sd->unsupported) summary += "; not followed: " + u;
    l.sdp_summary = std::move(summary);
    l.session = sd->name;
    out.push_back(std::move(l));
  }
  if (out.empty()) {
    error = path + ": every m=audio stream is declined (port 0)";
    return std::nullopt;
  }
  return out;
}

bool is_multicast_literal(const std::string& addr) noexcept {
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, addr.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 28) == 0xe;
  if (inet_pton(AF_INET6, addr.c_str(), &a6) == 1) return a6.s6_addr[0] == 0xff;
  return false;
}

}  // namespace rtpnode
