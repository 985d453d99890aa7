#include "node/config.hpp"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <cmath>

namespace rtpnode {

std::string ListenSpec::describe() const {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port) +
         (raw ? " (raw " + raw->describe() + ")" : "");
}

std::optional<nanoseconds> parse_duration(std::string_view text, std::string& error) {
  std::size_t unit_pos = 0;
  while (unit_pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[unit_pos])) || text[unit_pos] == '.'))
    ++unit_pos;
  const std::string number(text.substr(0, unit_pos));
  const std::string_view unit = text.substr(unit_pos);
  double value = 0;
  auto r = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || r.ec != std::errc{} || r.ptr != number.data() + number.size() || !std::isfinite(value)) {
    error = "bad duration '" + std::string(text) + "' (examples: 40ms, 2s, 1.5s)";
    return std::nullopt;
  }
  double scale = 0;
  if (unit == "ns") scale = 1;
  else if (unit == "us") scale = 1e3;
  else if (unit == "ms") scale = 1e6;
  else if (unit == "s") scale = 1e9;
  else if (unit == "m" || unit == "min") scale = 60e9;
  else if (unit == "h") scale = 3600e9;
  else {
    error = "duration '" + std::string(text) + "' needs a unit: ns, us, ms, s, m or h";
    return std::nullopt;
  }
  return nanoseconds(static_cast<std::int64_t>(std::llround(value * scale)));
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
      error = "bad listen address '" + std::string(text) + "' (expected ADDR:PORT, e.g. 0.0.0.0:5004)";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || r.ec != std::errc{} || r.ptr != port.data() + port.size() || p == 0 || p > 65535) {
    error = "bad port in '" + std::string(text) + "' (1..65535)";
    return std::nullopt;
  }
  l.address = std::string(host);
  unsigned char buf[16];
  if (inet_pton(AF_INET, l.address.c_str(), buf) != 1 && inet_pton(AF_INET6, l.address.c_str(), buf) != 1) {
    error = "bad IP address '" + l.address + "' in '" + std::string(text) + "'";
    return std::nullopt;
  }
  l.port = static_cast<std::uint16_t>(p);
  return l;
}

}  // namespace rtpnode
