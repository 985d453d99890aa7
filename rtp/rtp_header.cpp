#include "rtp/rtp_header.hpp"

namespace rtpnode {

std::string_view to_string(RtpParseStatus s) noexcept {
  switch (s) {
    case RtpParseStatus::ok:
      return "ok";
    case RtpParseStatus::too_short:
      return "too_short";
    case RtpParseStatus::bad_version:
      return "bad_version";
    case RtpParseStatus::bad_padding:
      return "bad_padding";
    case RtpParseStatus::csrc_overflow:
      return "csrc_overflow";
    case RtpParseStatus::extension_overflow:
      return "extension_overflow";
    case RtpParseStatus::rtcp:
      return "rtcp";
  }
  return "unknown";
}

namespace {
std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
}  // namespace

RtpParseStatus rtp_parse(std::span<const std::uint8_t> d, RtpHeaderView& out) noexcept {
  constexpr std::size_t kFixed = 12;
  if (d.size() < kFixed) return RtpParseStatus::too_short;
  if ((d[0] >> 6) != 2) return RtpParseStatus::bad_version;
  // RFC 5761 §4: with RTCP multiplexed on the RTP port, packet types 192..223 are RTCP.
  if (d[1] >= 192 && d[1] <= 223) return RtpParseStatus::rtcp;
  const bool padding = (d[0] & 0x20) != 0;
  const bool extension = (d[0] & 0x10) != 0;
  const std::uint8_t cc = d[0] & 0x0f;
  std::size_t header = kFixed + std::size_t{cc} * 4;
  if (header > d.size()) return RtpParseStatus::csrc_overflow;
  if (extension) {
    // RFC 3550 §5.3.1: 16-bit profile field, 16-bit length in 32-bit words, excluding the 4-byte
    // extension header itself.
    if (header + 4 > d.size()) return RtpParseStatus::extension_overflow;
    header += 4 + std::size_t{be16(&d[header + 2])} * 4;
    if (header > d.size()) return RtpParseStatus::extension_overflow;
  }
  std::size_t end = d.size();
  if (padding) {
    // RFC 3550 §5.1: the last octet counts the padding octets, itself included.
    const std::uint8_t pad = d[d.size() - 1];
    if (pad == 0 || pad > end - header) return RtpParseStatus::bad_padding;
    end -= pad;
  }
  out.payload_type = d[1] & 0x7f;
  out.marker = (d[1] & 0x80) != 0;
  out.sequence_number = be16(&d[2]);
  out.timestamp = be32(&d[4]);
  out.ssrc = be32(&d[8]);
  out.csrc_count = cc;
  out.has_extension = extension;
  out.payload = d.subspan(header, end - header);
  return RtpParseStatus::ok;
}

std::size_t rtp_write_header(std::span<std::uint8_t> o, std::uint8_t pt, bool marker, seq_t seq,
                             rtp_ts_t ts, std::uint32_t ssrc) noexcept {
  if (o.size() < 12) return 0;
  o[0] = 0x80;
  o[1] = static_cast<std::uint8_t>((marker ? 0x80 : 0) | (pt & 0x7f));
  o[2] = static_cast<std::uint8_t>(seq >> 8);
  o[3] = static_cast<std::uint8_t>(seq);
  for (int i = 0; i < 4; ++i) o[4 + i] = static_cast<std::uint8_t>(ts >> (24 - 8 * i));
  for (int i = 0; i < 4; ++i) o[8 + i] = static_cast<std::uint8_t>(ssrc >> (24 - 8 * i));
  return 12;
}

}  // namespace rtpnode
