#include "node/capture_file.hpp"

#include <arpa/inet.h>
#include <pcap/pcap.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace rtpnode {
namespace {

constexpr std::uint16_t kEtherIpv4 = 0x0800;
constexpr std::uint16_t kEtherIpv6 = 0x86dd;
constexpr std::uint8_t kProtoUdp = 17;
constexpr std::uint8_t kProtoTcp = 6;

std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

std::uint16_t be16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

sockaddr_storage v4_address(const std::uint8_t* addr, std::uint16_t port) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  std::memcpy(&sin->sin_addr, addr, 4);
  sin->sin_port = htons(port);
  return ss;
}

sockaddr_storage v6_address(const std::uint8_t* addr, std::uint16_t port) {
  sockaddr_storage ss{};
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  sin6->sin6_family = AF_INET6;
  std::memcpy(&sin6->sin6_addr, addr, 16);
  sin6->sin6_port = htons(port);
  return ss;
}

/// The next UDP datagram of `pcap`'s records (decoded by `decoder`), or none: the end of a file,
/// nothing waiting (a live capture), or an error (`error` set to libpcap's text).
std::optional<CapturedDatagram> next_datagram(pcap_t* pcap, int link_type, PacketDecoder& decoder,
                                              std::string& error) {
  while (pcap != nullptr) {
    if (auto ready = decoder.take_ready()) return ready;  // more SIP messages of one segment
    pcap_pkthdr* header = nullptr;
    const u_char* data = nullptr;
    const int rc = pcap_next_ex(pcap, &header, &data);
    if (rc == 0 || rc == PCAP_ERROR_BREAK) return std::nullopt;
    if (rc != 1) {
      error = pcap_geterr(pcap);
      return std::nullopt;
    }
    // Nanoseconds: both readers ask libpcap for nanosecond precision.
    const std::int64_t t = static_cast<std::int64_t>(header->ts.tv_sec) * 1'000'000'000 +
                           static_cast<std::int64_t>(header->ts.tv_usec);
    auto d = decoder.decode(link_type, t, std::span<const std::uint8_t>(data, header->caplen),
                            header->len);
    if (d) return d;
  }
  return std::nullopt;
}

void set_port(sockaddr_storage& ss, std::uint16_t port) {
  if (ss.ss_family == AF_INET)
    reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(port);
  else
    reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(port);
}

}  // namespace

bool PacketDecoder::supported(int link_type) noexcept {
  switch (link_type) {
    case DLT_NULL:
    case DLT_EN10MB:
    case DLT_RAW:
    case DLT_LOOP:
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_IPV4:
    case DLT_IPV6:
      return true;
    default:
      return false;
  }
}

std::optional<CapturedDatagram> PacketDecoder::decode(int link_type, std::int64_t time_ns,
                                                      std::span<const std::uint8_t> frame,
                                                      std::size_t wire_length) {
  ++stats_.frames;
  expire(time_ns);
  const bool cut = wire_length > frame.size();
  auto short_frame = [&]() -> std::optional<CapturedDatagram> {
    ++(cut ? stats_.truncated : stats_.malformed);
    return std::nullopt;
  };
  std::size_t offset = 0;
  int ether_type = -1;  // -1: by the IP version nibble
  switch (link_type) {
    case DLT_EN10MB: {
      if (frame.size() < 14) return short_frame();
      ether_type = be16(&frame[12]);
      offset = 14;
      // 802.1Q, 802.1ad and the older QinQ tag: 4 bytes each, the real EtherType after them.
      while (ether_type == 0x8100 || ether_type == 0x88a8 || ether_type == 0x9100) {
        if (frame.size() < offset + 4) return short_frame();
        ether_type = be16(&frame[offset + 2]);
        offset += 4;
      }
      break;
    }
    case DLT_LINUX_SLL:
      if (frame.size() < 16) return short_frame();
      ether_type = be16(&frame[14]);
      offset = 16;
      break;
    case DLT_LINUX_SLL2:
      if (frame.size() < 20) return short_frame();
      ether_type = be16(&frame[0]);
      offset = 20;
      break;
    case DLT_NULL:
    case DLT_LOOP:  // a 4-byte address family, in either byte order: the IP version decides
      if (frame.size() < 4) return short_frame();
      offset = 4;
      break;
    default:  // DLT_RAW, DLT_IPV4, DLT_IPV6
      break;
  }
  const auto ip = frame.subspan(offset);
  if (ether_type == -1) {
    if (ip.empty()) return short_frame();
    ether_type = (ip[0] >> 4) == 4 ? kEtherIpv4 : (ip[0] >> 4) == 6 ? kEtherIpv6 : 0;
  }
  if (ether_type == kEtherIpv4) return ipv4(time_ns, ip, cut);
  if (ether_type == kEtherIpv6) return ipv6(time_ns, ip, cut);
  ++stats_.not_ip;
  return std::nullopt;
}

std::optional<CapturedDatagram> PacketDecoder::ipv4(std::int64_t time_ns,
                                                    std::span<const std::uint8_t> ip, bool cut) {
  if (ip.size() < 20) {
    ++(cut ? stats_.truncated : stats_.malformed);
    return std::nullopt;
  }
  const std::size_t header = (ip[0] & 0x0f) * 4u;
  const std::size_t total = be16(&ip[2]);
  if ((ip[0] >> 4) != 4 || header < 20 || total < header) {
    ++stats_.malformed;
    return std::nullopt;
  }
  if (ip.size() < total) {  // cut by the snap length, or a frame shorter than its IP header says
    ++(cut ? stats_.truncated : stats_.malformed);
    return std::nullopt;
  }
  const std::uint8_t protocol = ip[9];
  if (protocol != kProtoUdp && protocol != kProtoTcp) {
    ++stats_.not_udp;
    return std::nullopt;
  }
  auto body = ip.subspan(header, total - header);  // Ethernet padding left out
  const std::uint16_t frag = be16(&ip[6]);
  const bool more = (frag & 0x2000) != 0;
  const std::uint32_t frag_offset = (frag & 0x1fffu) * 8u;
  if (more || frag_offset != 0) {
    std::uint8_t key[11];
    std::memcpy(key, &ip[12], 8);     // source, destination
    std::memcpy(key + 8, &ip[4], 2);  // identification
    key[10] = protocol;
    auto whole = fragment(time_ns, AF_INET, key, protocol, frag_offset, more, body);
    if (!whole) return std::nullopt;
    body = *whole;
  }
  if (body.size() < (protocol == kProtoTcp ? 20u : 8u)) {
    ++stats_.malformed;
    return std::nullopt;
  }
  const auto src = v4_address(&ip[12], be16(&body[0]));
  const auto dst = v4_address(&ip[16], be16(&body[2]));
  if (protocol == kProtoTcp) return tcp(time_ns, src, dst, body, cut);
  return udp(time_ns, src, dst, body, cut);
}

std::optional<CapturedDatagram> PacketDecoder::ipv6(std::int64_t time_ns,
                                                    std::span<const std::uint8_t> ip, bool cut) {
  if (ip.size() < 40) {
    ++(cut ? stats_.truncated : stats_.malformed);
    return std::nullopt;
  }
  const std::size_t payload_length = be16(&ip[4]);
  if ((ip[0] >> 4) != 6 || payload_length == 0) {  // 0: a jumbogram (RFC 2675), not audio
    ++stats_.malformed;
    return std::nullopt;
  }
  if (ip.size() < 40 + payload_length) {
    ++(cut ? stats_.truncated : stats_.malformed);
    return std::nullopt;
  }
  auto rest = ip.subspan(40, payload_length);
  std::uint8_t next = ip[6];
  // Extension headers (RFC 8200 §4): hop-by-hop, routing, destination options skipped; a
  // fragment header makes this a fragment of the rest.
  for (;;) {
    if (next == 0 || next == 43 || next == 60) {
      if (rest.size() < 8 || rest.size() < (rest[1] + 1u) * 8u) {
        ++stats_.malformed;
        return std::nullopt;
      }
      next = rest[0];
      rest = rest.subspan((rest[1] + 1u) * 8u);
      continue;
    }
    if (next == 44) {
      if (rest.size() < 8) {
        ++stats_.malformed;
        return std::nullopt;
      }
      const std::uint8_t protocol = rest[0];
      if (protocol != kProtoUdp && protocol != kProtoTcp) {
        ++stats_.not_udp;
        return std::nullopt;
      }
      const std::uint32_t frag_offset = be16(&rest[2]) & 0xfff8u;
      const bool more = (rest[3] & 1) != 0;
      std::uint8_t key[36];
      std::memcpy(key, &ip[8], 32);        // source, destination
      std::memcpy(key + 32, &rest[4], 4);  // identification
      auto whole = fragment(time_ns, AF_INET6, key, protocol, frag_offset, more, rest.subspan(8));
      if (!whole) return std::nullopt;
      rest = *whole;
      next = protocol;
    }
    break;
  }
  if (next != kProtoUdp && next != kProtoTcp) {
    ++stats_.not_udp;
    return std::nullopt;
  }
  if (rest.size() < (next == kProtoTcp ? 20u : 8u)) {
    ++stats_.malformed;
    return std::nullopt;
  }
  const auto src = v6_address(&ip[8], be16(&rest[0]));
  const auto dst = v6_address(&ip[24], be16(&rest[2]));
  if (next == kProtoTcp) return tcp(time_ns, src, dst, rest, cut);
  return udp(time_ns, src, dst, rest, cut);
}

std::optional<CapturedDatagram> PacketDecoder::udp(std::int64_t time_ns, sockaddr_storage src,
                                                   sockaddr_storage dst,
                                                   std::span<const std::uint8_t> l4, bool cut) {
  const std::size_t length = be16(&l4[4]);
  if (length < 8) {
    ++stats_.malformed;
    return std::nullopt;
  }
  if (length > l4.size()) {
    ++(cut ? stats_.truncated : stats_.malformed);
    return std::nullopt;
  }
  ++stats_.udp;
  CapturedDatagram d;
  d.time_ns = time_ns;
  d.source = src;
  d.destination = dst;
  set_port(d.source, be16(&l4[0]));
  set_port(d.destination, be16(&l4[2]));
  d.payload = l4.subspan(8, length - 8);
  return d;
}

std::optional<CapturedDatagram> PacketDecoder::tcp(std::int64_t time_ns, sockaddr_storage src,
                                                   sockaddr_storage dst,
                                                   std::span<const std::uint8_t> l4, bool cut) {
  // RFC 793 §3.1: the data offset in 32-bit words, then the flags.
  const std::size_t header = (l4[12] >> 4) * 4u;
  if (header < 20 || header > l4.size()) {
    ++(cut ? stats_.truncated : stats_.malformed);
    return std::nullopt;
  }
  if (cut) {
    // The snap length cut this segment's data: a hole in the stream, which the reassembly
    // skips when the segments after it pile up.
    ++stats_.truncated;
    return std::nullopt;
  }
  const std::uint8_t flags = l4[13];
  set_port(src, be16(&l4[0]));
  set_port(dst, be16(&l4[2]));
  sip_tcp_.on_segment(src, dst, be32(&l4[4]), (flags & 0x02) != 0, (flags & 0x01) != 0,
                      (flags & 0x04) != 0, l4.subspan(header), ready_);
  ready_time_ns_ = time_ns;
  return take_ready();
}

std::optional<CapturedDatagram> PacketDecoder::take_ready() {
  if (ready_.empty()) return std::nullopt;
  current_ = std::move(ready_.front());
  ready_.pop_front();
  CapturedDatagram d;
  d.time_ns = ready_time_ns_;
  d.source = current_.source;
  d.destination = current_.destination;
  d.payload = current_.bytes;
  d.tcp = true;
  return d;
}

void PacketDecoder::expire(std::int64_t time_ns) {
  const auto before = reassemblies_.size();
  std::erase_if(reassemblies_,
                [&](const Reassembly& r) { return time_ns - r.first_ns > kReassemblyTimeoutNs; });
  stats_.fragments_dropped += before - reassemblies_.size();
}

std::optional<std::span<const std::uint8_t>> PacketDecoder::fragment(
    std::int64_t time_ns, int family, std::span<const std::uint8_t> key, std::uint8_t protocol,
    std::uint32_t offset, bool more, std::span<const std::uint8_t> bytes) {
  ++stats_.fragments;
  auto it = std::find_if(reassemblies_.begin(), reassemblies_.end(), [&](const Reassembly& r) {
    return r.family == family && std::memcmp(r.key, key.data(), key.size()) == 0;
  });
  const std::uint32_t end = offset + static_cast<std::uint32_t>(bytes.size());
  if (end > 65535 || (more && bytes.size() % 8 != 0)) {  // RFC 791/8200: non-last multiple of 8
    ++stats_.malformed;
    if (it != reassemblies_.end()) {
      reassemblies_.erase(it);
      ++stats_.fragments_dropped;
    }
    return std::nullopt;
  }
  if (it == reassemblies_.end()) {
    if (reassemblies_.size() >= kMaxReassemblies) {
      reassemblies_.pop_front();
      ++stats_.fragments_dropped;
    }
    Reassembly r;
    r.first_ns = time_ns;
    r.family = family;
    std::memcpy(r.key, key.data(), key.size());
    r.protocol = protocol;
    reassemblies_.push_back(std::move(r));
    it = std::prev(reassemblies_.end());
  }
  Reassembly& r = *it;
  if (r.data.size() < end) r.data.resize(end);
  // A repeated fragment (a mirror port seeing a frame twice) overwrites itself: same bytes.
  std::copy(bytes.begin(), bytes.end(), r.data.begin() + offset);
  r.have.emplace_back(offset, end);
  if (!more) r.total = end;
  if (r.total == 0) return std::nullopt;
  std::sort(r.have.begin(), r.have.end());
  std::uint32_t covered = 0;
  for (const auto& [b, e] : r.have) {
    if (b > covered) return std::nullopt;  // a hole before b
    covered = std::max(covered, e);
  }
  if (covered < r.total) return std::nullopt;
  complete_.assign(r.data.begin(), r.data.begin() + r.total);
  reassemblies_.erase(it);
  ++stats_.reassembled;
  return std::span<const std::uint8_t>(complete_);
}

CaptureFileReader::CaptureFileReader(const std::string& path) : path_(path) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_ = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
  if (pcap_ == nullptr)
    throw std::runtime_error("--pcap " + path +
                             ": cannot read it as a pcap or pcapng capture: " + errbuf);
  link_type_ = pcap_datalink(pcap_);
  if (!PacketDecoder::supported(link_type_)) {
    const char* name = pcap_datalink_val_to_name(link_type_);
    const std::string what =
        std::string(name ? name : "unknown") + " (" + std::to_string(link_type_) + ")";
    pcap_close(pcap_);
    pcap_ = nullptr;
    throw std::runtime_error("--pcap " + path + ": link type " + what +
                             " is not supported; supported: EN10MB (Ethernet, VLAN tags), "
                             "LINUX_SLL, LINUX_SLL2, RAW, IPV4, IPV6, NULL, LOOP");
  }
}

CaptureFileReader::~CaptureFileReader() {
  if (pcap_ != nullptr) pcap_close(pcap_);
}

std::optional<CapturedDatagram> CaptureFileReader::next() {
  return next_datagram(pcap_, link_type_, decoder_, error_);
}

LiveCapture::LiveCapture(const std::string& iface, const std::string& filter) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  pcap_ = pcap_create(iface.c_str(), errbuf);
  if (pcap_ == nullptr) throw std::runtime_error("--capture " + iface + ": " + errbuf);
  pcap_set_snaplen(pcap_, 65535);
  pcap_set_promisc(pcap_, 1);
  pcap_set_immediate_mode(pcap_, 1);
  pcap_set_buffer_size(pcap_, 8 << 20);
  pcap_set_tstamp_precision(pcap_, PCAP_TSTAMP_PRECISION_NANO);
  const int rc = pcap_activate(pcap_);
  auto fail = [&](const std::string& why) {
    pcap_close(pcap_);
    pcap_ = nullptr;
    throw std::runtime_error("--capture " + iface + ": " + why);
  };
  if (rc == PCAP_ERROR_PERM_DENIED || rc == PCAP_ERROR_PROMISC_PERM_DENIED)
    fail(
        "not permitted: capturing needs CAP_NET_RAW (run as root, or give the binary the "
        "capability: setcap cap_net_raw,cap_net_admin+ep " +
        std::string("$(command -v rtpnode)") + ")");
  if (rc == PCAP_ERROR_NO_SUCH_DEVICE)
    fail("no such interface (see `ip link`; \"any\" captures on all of them)");
  if (rc < 0) fail(pcap_geterr(pcap_));
  link_type_ = pcap_datalink(pcap_);
  if (!PacketDecoder::supported(link_type_)) {
    const char* name = pcap_datalink_val_to_name(link_type_);
    fail(std::string("link type ") + (name ? name : "unknown") + " is not supported");
  }
  if (!filter.empty()) {
    bpf_program prog{};
    if (pcap_compile(pcap_, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
      fail("--capture-filter '" + filter + "': " + pcap_geterr(pcap_));
    const int set = pcap_setfilter(pcap_, &prog);
    pcap_freecode(&prog);
    if (set != 0) fail("--capture-filter '" + filter + "': " + pcap_geterr(pcap_));
  }
  if (pcap_setnonblock(pcap_, 1, errbuf) != 0) fail(errbuf);
  fd_ = pcap_get_selectable_fd(pcap_);
  if (fd_ < 0) fail("no selectable descriptor");
}

LiveCapture::~LiveCapture() {
  if (pcap_ != nullptr) pcap_close(pcap_);
}

std::optional<CapturedDatagram> LiveCapture::next() {
  return next_datagram(pcap_, link_type_, decoder_, error_);
}

std::uint64_t LiveCapture::kernel_drops() const noexcept {
  pcap_stat st{};
  if (pcap_ == nullptr || pcap_stats(pcap_, &st) != 0) return 0;
  return st.ps_drop;
}

}  // namespace rtpnode
