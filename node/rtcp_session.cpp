#include "node/rtcp_session.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "node/net_address.hpp"

namespace rtpnode {

namespace {

std::uint64_t splitmix(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr std::size_t kUdpIpHeaders = 28;  // IPv4 + UDP, as RFC 3550 §6.2 counts bandwidth
constexpr std::size_t kMaxBlocks = 31;     // the RR's 5-bit report count

}  // namespace

RtcpSession::RtcpSession(std::uint64_t seed, std::string cname, std::size_t max_held)
    : rng_(seed),
      reporter_ssrc_(static_cast<std::uint32_t>(splitmix(rng_))),
      cname_(std::move(cname)),
      max_held_(max_held) {}

void RtcpSession::on_datagram(std::size_t bytes, mono_ns_t now) noexcept {
  session_bw_.on_datagram(bytes + kUdpIpHeaders, now);
}

void RtcpSession::on_compound(std::size_t bytes) noexcept {
  avg_rtcp_size_ += (static_cast<double>(bytes + kUdpIpHeaders) - avg_rtcp_size_) / 16.0;  // §6.3.3
}

const HeldSenderReport& RtcpSession::hold(std::uint64_t key, const RtcpSenderReport& sr,
                                          const sockaddr* from, mono_ns_t now) {
  HeldSenderReport h{
      ntp64_to_ns(sr.ntp), sr.rtp_ts, static_cast<std::uint32_t>(sr.ntp >> 16), now, {}};
  std::memcpy(&h.from, from, sockaddr_length(from));
  if (held_.size() >= max_held_ && !held_.contains(key)) held_.clear();
  return held_[key] = h;
}

const HeldSenderReport* RtcpSession::held(std::uint64_t key) const {
  const auto it = held_.find(key);
  return it == held_.end() ? nullptr : &it->second;
}

double RtcpSession::next_interval_s(std::size_t senders, std::chrono::nanoseconds min_interval,
                                    mono_ns_t now) {
  RtcpIntervalInputs in;
  in.senders = static_cast<double>(senders);
  in.members = 1 + in.senders;
  in.rtcp_bandwidth = 0.05 * session_bw_.bytes_per_second(now);
  in.avg_rtcp_size = avg_rtcp_size_;
  in.initial = initial_;
  in.min_interval_s = std::chrono::duration<double>(min_interval).count();
  const double u = static_cast<double>(splitmix(rng_) >> 11) * 0x1.0p-53;
  return rtcp_interval(in, u);
}

OutgoingReports RtcpSession::build(const std::vector<ReportTarget>& targets, mono_ns_t now) const {
  OutgoingReports out;
  std::vector<RtcpReportBlock> blocks;
  for (const ReportTarget& t : targets) {
    RtcpReportBlock b = t.block;
    b.reporter = reporter_ssrc_;
    sockaddr_storage dest = t.rtp_from;
    if (const HeldSenderReport* sr = held(t.key)) {
      b.lsr = sr->lsr;
      b.dlsr = static_cast<std::uint32_t>(static_cast<double>(now - sr->received) * 65536.0 / 1e9);
      dest = sr->from;
    } else if (dest.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&dest);
      a->sin_port = htons(static_cast<std::uint16_t>(ntohs(a->sin_port) + 1));  // RFC 3550 §11
    } else if (dest.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&dest);
      a->sin6_port = htons(static_cast<std::uint16_t>(ntohs(a->sin6_port) + 1));
    }
    blocks.push_back(b);
    const std::size_t len = sockaddr_length(reinterpret_cast<const sockaddr*>(&dest));
    if (std::none_of(out.destinations.begin(), out.destinations.end(),
                     [&](const sockaddr_storage& d) { return std::memcmp(&d, &dest, len) == 0; }))
      out.destinations.push_back(dest);
  }
  for (std::size_t first = 0; first < blocks.size(); first += kMaxBlocks) {
    const auto end = std::min(blocks.size(), first + kMaxBlocks);
    const std::vector<RtcpReportBlock> part(blocks.begin() + static_cast<std::ptrdiff_t>(first),
                                            blocks.begin() + static_cast<std::ptrdiff_t>(end));
    out.packets.push_back(rtcp_build_receiver_report(reporter_ssrc_, part, cname_));
  }
  return out;
}

void RtcpSession::on_reported(mono_ns_t now) noexcept {
  initial_ = false;
  session_bw_.restart(now);
}

}  // namespace rtpnode
