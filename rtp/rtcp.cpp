#include "rtp/rtcp.hpp"

#include <ortp/ortp.h>
#include <ortp/rtcp.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace rtpnode {

namespace {

constexpr int kSr = 200, kRr = 201, kSdes = 202, kBye = 203;

void put32(std::vector<std::uint8_t>& v, std::uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<std::uint8_t>(x >> s));
}

struct MsgDeleter {
  void operator()(mblk_t* m) const { freemsg(m); }
};

RtcpReportBlock read_block(std::uint32_t reporter, const report_block_t* rb) {
  RtcpReportBlock b;
  b.reporter = reporter;
  b.ssrc = report_block_get_ssrc(rb);
  b.fraction_lost = static_cast<std::uint8_t>(report_block_get_fraction_lost(rb));
  b.cumulative_lost = report_block_get_cum_packet_lost(rb);
  b.highest_seq = report_block_get_high_ext_seq(rb);
  b.jitter = report_block_get_interarrival_jitter(rb);
  b.lsr = report_block_get_last_SR_time(rb);
  b.dlsr = report_block_get_last_SR_delay(rb);
  return b;
}

}  // namespace

std::string_view to_string(RtcpParseStatus s) noexcept {
  switch (s) {
    case RtcpParseStatus::ok:
      return "ok";
    case RtcpParseStatus::too_short:
      return "too_short";
    case RtcpParseStatus::bad_version:
      return "bad_version";
    case RtcpParseStatus::bad_length:
      return "bad_length";
    case RtcpParseStatus::bad_padding:
      return "bad_padding";
  }
  return "?";
}

namespace {

/// oRTP's SdesItemFoundCallback. oRTP passes the item type byte from the wire, 0..255, as its
/// enum; in C++ a value outside the enum's range must not be read as the enum (undefined; the
/// fuzzer found type 100), so its bytes are read instead, and the parameter is never converted.
void on_sdes_item(void* user, std::uint32_t ssrc, rtcp_sdes_type_t t, const char* content,
                  std::uint8_t len) {
  unsigned type = 0;
  static_assert(sizeof type >= sizeof t);
  std::memcpy(&type, &t, sizeof t);
  if (type == RTCP_SDES_CNAME && content)
    static_cast<RtcpCompound*>(user)->cnames.emplace_back(ssrc, std::string(content, len));
}

}  // namespace

RtcpParseStatus rtcp_parse(std::span<const std::uint8_t> data, RtcpCompound& out) {
  out = {};
  if (data.size() < 8) return RtcpParseStatus::too_short;
  // RFC 3550 A.2: every packet version 2; padding only on the last; lengths add up exactly.
  // Each packet is also long enough for what its count says, so oRTP's accessors below only
  // read inside the datagram.
  for (std::size_t pos = 0; pos < data.size();) {
    if (data.size() - pos < 4) return RtcpParseStatus::too_short;
    const std::uint8_t* p = data.data() + pos;
    if ((p[0] >> 6) != 2) return RtcpParseStatus::bad_version;
    const std::size_t len = (std::size_t{p[2]} << 8 | p[3]) * 4 + 4;
    if (len > data.size() - pos) return RtcpParseStatus::too_short;
    const bool last = pos + len == data.size();
    std::size_t body = len;
    if (p[0] & 0x20) {
      if (!last) return RtcpParseStatus::bad_padding;
      const std::uint8_t pad = p[len - 1];
      if (pad == 0 || pad > len - 4) return RtcpParseStatus::bad_padding;
      body = len - pad;
    }
    const int count = p[0] & 0x1f;
    const int type = p[1];
    std::size_t need = 4;
    if (type == kSr)
      need = 28 + 24 * static_cast<std::size_t>(count);
    else if (type == kRr)
      need = 8 + 24 * static_cast<std::size_t>(count);
    else if (type == kBye)
      need = 4 + 4 * static_cast<std::size_t>(count);
    if (body < need) return RtcpParseStatus::bad_length;
    pos += len;
    ++out.packets;
  }

  std::unique_ptr<mblk_t, MsgDeleter> m(allocb(data.size(), 0));
  std::memcpy(m->b_wptr, data.data(), data.size());
  m->b_wptr += data.size();
  do {
    const int count = rtcp_common_header_get_rc(rtcp_get_common_header(m.get()));
    if (rtcp_is_SR(m.get())) {
      const sender_info_t* si = rtcp_SR_get_sender_info(m.get());
      RtcpSenderReport sr;
      sr.ssrc = rtcp_SR_get_ssrc(m.get());
      sr.ntp = sender_info_get_ntp_timestamp(si);
      sr.rtp_ts = sender_info_get_rtp_timestamp(si);
      sr.packets = sender_info_get_packet_count(si);
      sr.octets = sender_info_get_octet_count(si);
      out.sender_reports.push_back(sr);
      for (int i = 0; i < count; ++i)
        out.report_blocks.push_back(read_block(sr.ssrc, rtcp_SR_get_report_block(m.get(), i)));
    } else if (rtcp_is_RR(m.get())) {
      const std::uint32_t reporter = rtcp_RR_get_ssrc(m.get());
      for (int i = 0; i < count; ++i)
        out.report_blocks.push_back(read_block(reporter, rtcp_RR_get_report_block(m.get(), i)));
    } else if (rtcp_is_SDES(m.get())) {
      rtcp_sdes_parse(m.get(), on_sdes_item, &out);
    } else if (rtcp_is_BYE(m.get())) {
      for (int i = 0; i < count; ++i) {
        std::uint32_t ssrc = 0;
        if (rtcp_BYE_get_ssrc(m.get(), i, &ssrc)) out.byes.push_back(ssrc);
      }
    }
  } while (rtcp_next_packet(m.get()));
  return RtcpParseStatus::ok;
}

namespace {

void append_sdes_cname(std::vector<std::uint8_t>& v, std::uint32_t ssrc, std::string_view cname) {
  const std::size_t name_len = std::min<std::size_t>(cname.size(), 255);
  const std::size_t chunk = 4 + 2 + name_len + 1;  // SSRC, CNAME item, END
  const std::size_t padded = (chunk + 3) / 4 * 4;
  v.push_back(0x81);
  v.push_back(kSdes);
  const auto words = static_cast<std::uint16_t>(padded / 4);
  v.push_back(static_cast<std::uint8_t>(words >> 8));
  v.push_back(static_cast<std::uint8_t>(words));
  put32(v, ssrc);
  v.push_back(1);  // CNAME
  v.push_back(static_cast<std::uint8_t>(name_len));
  v.insert(v.end(), cname.begin(), cname.begin() + static_cast<std::ptrdiff_t>(name_len));
  v.insert(v.end(), padded - chunk + 1, 0);  // END item and padding
}

}  // namespace

std::vector<std::uint8_t> rtcp_build_sender_report(const RtcpSenderReport& sr,
                                                   std::string_view cname, bool bye) {
  std::vector<std::uint8_t> v{0x80, kSr, 0, 6};
  put32(v, sr.ssrc);
  put32(v, static_cast<std::uint32_t>(sr.ntp >> 32));
  put32(v, static_cast<std::uint32_t>(sr.ntp));
  put32(v, sr.rtp_ts);
  put32(v, sr.packets);
  put32(v, sr.octets);
  append_sdes_cname(v, sr.ssrc, cname);
  if (bye) {
    v.insert(v.end(), {0x81, kBye, 0, 1});
    put32(v, sr.ssrc);
  }
  return v;
}

std::vector<std::uint8_t> rtcp_build_receiver_report(std::uint32_t reporter,
                                                     const std::vector<RtcpReportBlock>& blocks,
                                                     std::string_view cname) {
  std::vector<std::uint8_t> v;
  const std::size_t n = std::min<std::size_t>(blocks.size(), 31);
  v.push_back(static_cast<std::uint8_t>(0x80 | n));
  v.push_back(kRr);
  const auto words = static_cast<std::uint16_t>(1 + 6 * n);  // length in 32-bit words minus one
  v.push_back(static_cast<std::uint8_t>(words >> 8));
  v.push_back(static_cast<std::uint8_t>(words));
  put32(v, reporter);
  for (std::size_t i = 0; i < n; ++i) {
    const RtcpReportBlock& b = blocks[i];
    put32(v, b.ssrc);
    const std::int32_t lost = std::clamp(b.cumulative_lost, -0x800000, 0x7fffff);
    put32(v,
          (std::uint32_t{b.fraction_lost} << 24) | (static_cast<std::uint32_t>(lost) & 0xffffff));
    put32(v, b.highest_seq);
    put32(v, b.jitter);
    put32(v, b.lsr);
    put32(v, b.dlsr);
  }
  append_sdes_cname(v, reporter, cname);
  return v;
}

double rtcp_interval(const RtcpIntervalInputs& in, double uniform) noexcept {
  constexpr double kSenderFraction = 0.25, kReceiverFraction = 1.0 - kSenderFraction;
  constexpr double kCompensation = 2.71828 - 1.5;
  const double tmin = in.initial ? in.min_interval_s / 2 : in.min_interval_s;
  double n = in.members;
  double bw = in.rtcp_bandwidth;
  if (in.senders <= in.members * kSenderFraction) {
    if (in.we_sent) {
      bw *= kSenderFraction;
      n = in.senders;
    } else {
      bw *= kReceiverFraction;
      n -= in.senders;
    }
  }
  double t = bw > 0 ? in.avg_rtcp_size * n / bw : tmin;
  if (t < tmin) t = tmin;
  return t * (uniform + 0.5) / kCompensation;
}

namespace {
constexpr std::int64_t kMinWindowNs = 200'000'000;
}

void SessionBandwidthMeter::on_datagram(std::size_t bytes, std::int64_t now) noexcept {
  if (first_ < 0)
    first_ = now;
  else
    bytes_ += static_cast<double>(bytes);
}

double SessionBandwidthMeter::window_rate(std::int64_t now) const noexcept {
  if (first_ < 0 || now - first_ < kMinWindowNs) return -1;
  return bytes_ * 1e9 / static_cast<double>(now - first_);
}

double SessionBandwidthMeter::bytes_per_second(std::int64_t now) const noexcept {
  const double r = window_rate(now);
  return r >= 0 ? r : previous_;
}

void SessionBandwidthMeter::restart(std::int64_t now) noexcept {
  if (const double r = window_rate(now); r >= 0) previous_ = r;
  first_ = -1;
  bytes_ = 0;
}

}  // namespace rtpnode
