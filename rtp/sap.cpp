#include "rtp/sap.hpp"

#include <arpa/inet.h>

#include <zlib.h>

#include <array>
#include <cstring>
#include <vector>

namespace rtpnode {

std::optional<SapMessage> parse_sap(std::span<const std::uint8_t> b, std::string& error) {
  if (b.size() < 8) {
    error = "shorter than a SAP header (" + std::to_string(b.size()) + " bytes)";
    return std::nullopt;
  }
  const std::uint8_t flags = b[0];
  const int version = flags >> 5;
  const bool ipv6 = (flags & 0x10) != 0;
  if (version != 1) {
    error = "SAP version " + std::to_string(version) + " (only version 1, RFC 2974)";
    return std::nullopt;
  }
  if ((flags & 0x02) != 0) {
    error = "encrypted announcement (E bit): not supported";
    return std::nullopt;
  }
  const bool compressed = (flags & 0x01) != 0;
  SapMessage m;
  m.deletion = (flags & 0x04) != 0;
  m.msg_id_hash = static_cast<std::uint16_t>((b[2] << 8) | b[3]);
  const std::size_t origin_len = ipv6 ? 16 : 4;
  const std::size_t auth_len = static_cast<std::size_t>(b[1]) * 4;
  std::size_t pos = 4 + origin_len + auth_len;
  if (pos > b.size()) {
    error = "authentication data (" + std::to_string(auth_len) + " bytes) beyond the packet";
    return std::nullopt;
  }
  std::array<char, INET6_ADDRSTRLEN> text{};
  inet_ntop(ipv6 ? AF_INET6 : AF_INET, b.data() + 4, text.data(), text.size());
  m.origin = text.data();
  // RFC 2974 §3: with the C bit, the payload (payload type and description) is zlib-compressed
  // (RFC 1950). Inflated into at most kMaxSapPayload bytes: a small datagram cannot make a
  // large buffer.
  std::vector<std::uint8_t> inflated;
  if (compressed) {
    inflated.resize(kMaxSapPayload);
    uLongf out_len = static_cast<uLongf>(inflated.size());
    const int rc =
        uncompress(inflated.data(), &out_len, b.data() + pos, static_cast<uLong>(b.size() - pos));
    if (rc != Z_OK) {
      error = rc == Z_BUF_ERROR ? "compressed payload inflates beyond " +
                                      std::to_string(kMaxSapPayload) + " bytes"
                                : "compressed payload is not valid zlib data";
      return std::nullopt;
    }
    inflated.resize(out_len);
    b = inflated;
    pos = 0;
  }
  const auto rest = b.subspan(pos);
  const auto starts_sdp = [&](std::span<const std::uint8_t> p) {
    return p.size() >= 3 && p[0] == 'v' && p[1] == '=' && p[2] == '0';
  };
  if (!starts_sdp(rest)) {
    const auto* nul = static_cast<const std::uint8_t*>(std::memchr(rest.data(), 0, rest.size()));
    if (nul == nullptr) {
      error = "neither a payload type nor SDP after the header";
      return std::nullopt;
    }
    m.payload_type.assign(reinterpret_cast<const char*>(rest.data()),
                          static_cast<std::size_t>(nul - rest.data()));
    if (m.payload_type != "application/sdp") {
      error = "payload type '" + m.payload_type + "' (only application/sdp)";
      return std::nullopt;
    }
    pos += m.payload_type.size() + 1;
  }
  m.sdp.assign(reinterpret_cast<const char*>(b.data() + pos), b.size() - pos);
  // Some senders NUL-terminate the description too.
  while (!m.sdp.empty() && m.sdp.back() == '\0') m.sdp.pop_back();
  if (m.sdp.empty()) {
    error = "empty session description";
    return std::nullopt;
  }
  return m;
}

std::string build_sap(bool deletion, std::uint16_t msg_id_hash, const std::string& origin,
                      const std::string& sdp) {
  in_addr a{};
  if (inet_pton(AF_INET, origin.c_str(), &a) != 1) return {};
  std::string out;
  out += static_cast<char>(0x20 | (deletion ? 0x04 : 0));
  out += '\0';
  out += static_cast<char>(msg_id_hash >> 8);
  out += static_cast<char>(msg_id_hash & 0xff);
  out.append(reinterpret_cast<const char*>(&a), 4);
  out += "application/sdp";
  out += '\0';
  out += sdp;
  return out;
}

}  // namespace rtpnode
