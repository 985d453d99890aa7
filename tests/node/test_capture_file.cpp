// Capture files (issue #14): link layers, IPv4/IPv6, fragment reassembly and its bounds, and
// pcap/pcapng files -- frames built byte by byte here, files written by libpcap and by hand
// (pcapng blocks per the pcapng specification, draft-ietf-opsawg-pcapng).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "node/capture_file.hpp"
#include "node/capture_replay.hpp"
#include "node/sip_tcp.hpp"

namespace rtpnode {
namespace {

using Bytes = std::vector<std::uint8_t>;

void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
void put32(Bytes& b, std::uint32_t v) {
  put16(b, static_cast<std::uint16_t>(v >> 16));
  put16(b, static_cast<std::uint16_t>(v));
}
void append(Bytes& b, const Bytes& more) {
  b.insert(b.end(), more.begin(), more.end());
}

Bytes payload_of(std::size_t n, std::uint8_t seed) {
  Bytes p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(seed + i * 7);
  return p;
}

Bytes udp_segment(std::uint16_t sport, std::uint16_t dport, const Bytes& payload) {
  Bytes u;
  put16(u, sport);
  put16(u, dport);
  put16(u, static_cast<std::uint16_t>(8 + payload.size()));
  put16(u, 0);  // no checksum (allowed for IPv4; not checked here)
  append(u, payload);
  return u;
}

/// An IPv4 header + `body` (bytes at fragment offset `offset`, `more` fragments follow).
Bytes ipv4(const Bytes& body, std::uint8_t protocol = 17, std::uint16_t id = 1,
           std::uint32_t offset = 0, bool more = false) {
  Bytes ip{0x45, 0};
  put16(ip, static_cast<std::uint16_t>(20 + body.size()));
  put16(ip, id);
  put16(ip, static_cast<std::uint16_t>((more ? 0x2000 : 0) | (offset / 8)));
  ip.push_back(64);
  ip.push_back(protocol);
  put16(ip, 0);
  append(ip, {192, 0, 2, 10});
  append(ip, {198, 51, 100, 20});
  append(ip, body);
  return ip;
}

/// An IPv6 header (2001:db8::a -> 2001:db8::14) + extension headers and `body`.
Bytes ipv6(const Bytes& after, std::uint8_t next) {
  Bytes ip{0x60, 0, 0, 0};
  put16(ip, static_cast<std::uint16_t>(after.size()));
  ip.push_back(next);
  ip.push_back(64);
  Bytes src(16, 0), dst(16, 0);
  src[0] = dst[0] = 0x20;
  src[1] = dst[1] = 0x01;
  src[2] = dst[2] = 0x0d;
  src[3] = dst[3] = 0xb8;
  src[15] = 0x0a;
  dst[15] = 0x14;
  append(ip, src);
  append(ip, dst);
  append(ip, after);
  return ip;
}

Bytes ethernet(const Bytes& ip, std::uint16_t ether_type, std::vector<std::uint16_t> tags = {}) {
  Bytes f{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};
  for (auto tpid : tags) {
    put16(f, tpid);
    put16(f, 100);  // VLAN 100
  }
  put16(f, ether_type);
  append(f, ip);
  return f;
}

/// A TCP segment (20-byte header, no options) with sequence number `seq` and `flags`
/// (0x01 FIN, 0x02 SYN, 0x04 RST, 0x10 ACK).
Bytes tcp_segment(std::uint16_t sport, std::uint16_t dport, std::uint32_t seq, std::uint8_t flags,
                  const std::string& data) {
  Bytes t;
  put16(t, sport);
  put16(t, dport);
  put32(t, seq);
  put32(t, 0);        // acknowledgment number
  t.push_back(0x50);  // data offset 5 words
  t.push_back(flags);
  put16(t, 65535);  // window
  put16(t, 0);      // checksum (not checked)
  put16(t, 0);      // urgent pointer
  t.insert(t.end(), data.begin(), data.end());
  return t;
}

std::string sip_message(const std::string& start, const std::string& call_id,
                        const std::string& body = "") {
  return start + "\r\nVia: SIP/2.0/TCP 192.0.2.10:5060\r\nCall-ID: " + call_id +
         "\r\nCSeq: 1 INVITE\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string text(std::span<const std::uint8_t> s) {
  return std::string(s.begin(), s.end());
}
std::uint16_t port_of(const sockaddr_storage& ss) {
  return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(ss).sin_port
                                       : reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
}
std::string host_of(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, buf, sizeof buf);
  else
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, buf, sizeof buf);
  return buf;
}

TEST(PacketDecoder, EthernetWithStackedVlanTagsGivesTheDatagramAddressesAndTime) {
  PacketDecoder dec;
  const Bytes payload = payload_of(172, 3);
  Bytes frame = ethernet(ipv4(udp_segment(4000, 5004, payload)), 0x0800, {0x88a8, 0x8100});
  auto d = dec.decode(DLT_EN10MB, 123'456'789, frame, frame.size());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->time_ns, 123'456'789);
  EXPECT_EQ(host_of(d->source), "192.0.2.10");
  EXPECT_EQ(port_of(d->source), 4000);
  EXPECT_EQ(host_of(d->destination), "198.51.100.20");
  EXPECT_EQ(port_of(d->destination), 5004);
  EXPECT_EQ(text(d->payload), text(payload));
  EXPECT_EQ(dec.stats().udp, 1u);
}

TEST(PacketDecoder, EthernetPaddingIsNotPartOfTheDatagram) {
  PacketDecoder dec;
  const Bytes payload = payload_of(4, 9);  // a 46-byte minimum frame pads this with zeros
  Bytes frame = ethernet(ipv4(udp_segment(1, 2, payload)), 0x0800);
  frame.resize(60, 0);
  auto d = dec.decode(DLT_EN10MB, 0, frame, frame.size());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->payload.size(), 4u);
}

TEST(PacketDecoder, CookedRawAndLoopbackLinkTypes) {
  const Bytes payload = payload_of(40, 1);
  const Bytes ip = ipv4(udp_segment(1000, 2000, payload));
  Bytes sll{0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0};  // packet type, ARPHRD, addr len, addr
  put16(sll, 0x0800);
  append(sll, ip);
  Bytes sll2;
  put16(sll2, 0x0800);
  append(sll2, Bytes(18, 0));  // reserved, ifindex, ARPHRD, type, addr len, addr
  append(sll2, ip);
  Bytes null_le{2, 0, 0, 0};  // AF_INET in the capturing host's (little-endian) order
  append(null_le, ip);
  Bytes loop_v6{0, 0, 0, 30};  // AF_INET6 on a BSD, network order
  append(loop_v6, ipv6(udp_segment(1000, 2000, payload), 17));
  const std::vector<std::pair<int, Bytes>> cases{
      {DLT_LINUX_SLL, sll},
      {DLT_LINUX_SLL2, sll2},
      {DLT_RAW, ip},
      {DLT_IPV4, ip},
      {DLT_NULL, null_le},
      {DLT_LOOP, loop_v6},
      {DLT_IPV6, ipv6(udp_segment(1000, 2000, payload), 17)}};
  for (const auto& [link, frame] : cases) {
    PacketDecoder dec;
    ASSERT_TRUE(PacketDecoder::supported(link));
    auto d = dec.decode(link, 0, frame, frame.size());
    ASSERT_TRUE(d) << "link type " << link;
    EXPECT_EQ(port_of(d->destination), 2000) << link;
    EXPECT_EQ(text(d->payload), text(payload)) << link;
  }
  EXPECT_FALSE(PacketDecoder::supported(DLT_IEEE802_11));
}

TEST(PacketDecoder, Ipv6ExtensionHeadersAreSkipped) {
  PacketDecoder dec;
  const Bytes payload = payload_of(160, 5);
  Bytes after{60, 0, 1, 4, 0, 0, 0, 0};  // hop-by-hop: next = destination options, 8 bytes (PadN)
  append(after, {17, 0, 1, 4, 0, 0, 0, 0});  // destination options: next = UDP
  append(after, udp_segment(7078, 7080, payload));
  const Bytes frame = ethernet(ipv6(after, 0), 0x86dd);
  auto d = dec.decode(DLT_EN10MB, 0, frame, frame.size());
  ASSERT_TRUE(d);
  EXPECT_EQ(host_of(d->source), "2001:db8::a");
  EXPECT_EQ(host_of(d->destination), "2001:db8::14");
  EXPECT_EQ(port_of(d->destination), 7080);
  EXPECT_EQ(text(d->payload), text(payload));
}

TEST(PacketDecoder, Ipv4FragmentsOutOfOrderAndRepeatedAreReassembledOnce) {
  PacketDecoder dec;
  const Bytes payload = payload_of(3000, 11);  // a 48 kHz L24 stereo 20 ms packet is 5760 bytes
  const Bytes seg = udp_segment(5000, 5004, payload);
  auto piece = [&](std::size_t from, std::size_t n, bool more) {
    return ethernet(ipv4(Bytes(seg.begin() + from, seg.begin() + from + n), 17, 77,
                         static_cast<std::uint32_t>(from), more),
                    0x0800);
  };
  const Bytes f0 = piece(0, 1480, true), f1 = piece(1480, 1480, true),
              f2 = piece(2960, seg.size() - 2960, false);
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 1, f2, f2.size()));
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 2, f0, f0.size()));
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 3, f0, f0.size()));  // the mirror port saw it twice
  auto d = dec.decode(DLT_EN10MB, 4, f1, f1.size());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->time_ns, 4);  // the time of the fragment that completed it
  EXPECT_EQ(port_of(d->destination), 5004);
  EXPECT_EQ(text(d->payload), text(payload));
  EXPECT_EQ(dec.stats().fragments, 4u);
  EXPECT_EQ(dec.stats().reassembled, 1u);
  EXPECT_EQ(dec.stats().udp, 1u);
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 5, f1, f1.size()));  // a late copy starts a new one
}

TEST(PacketDecoder, Ipv6FragmentsAreReassembled) {
  PacketDecoder dec;
  const Bytes payload = payload_of(2000, 2);
  const Bytes seg = udp_segment(6000, 6002, payload);
  auto piece = [&](std::size_t from, std::size_t n, bool more) {
    Bytes after{17, 0};
    put16(after, static_cast<std::uint16_t>(from | (more ? 1 : 0)));
    put32(after, 0xabcdef01);
    append(after, Bytes(seg.begin() + from, seg.begin() + from + n));
    return ipv6(after, 44);
  };
  const Bytes a = piece(0, 1232, true), b = piece(1232, seg.size() - 1232, false);
  EXPECT_FALSE(dec.decode(DLT_RAW, 1, a, a.size()));
  auto d = dec.decode(DLT_RAW, 2, b, b.size());
  ASSERT_TRUE(d);
  EXPECT_EQ(port_of(d->destination), 6002);
  EXPECT_EQ(text(d->payload), text(payload));
}

TEST(PacketDecoder, ReassemblyIsBoundedInCountAndTime) {
  PacketDecoder dec;
  const Bytes first_half(1480, 1);
  // 100 datagrams whose last fragment never comes: at most kMaxReassemblies are kept.
  for (std::uint16_t id = 0; id < 100; ++id) {
    const Bytes f = ipv4(first_half, 17, id, 0, true);
    EXPECT_FALSE(dec.decode(DLT_RAW, id, f, f.size()));
  }
  EXPECT_EQ(dec.stats().fragments_dropped, 100u - PacketDecoder::kMaxReassemblies);
  // 31 s of capture time later every one of them has expired.
  const Bytes other = ipv4(udp_segment(1, 2, payload_of(10, 0)));
  ASSERT_TRUE(dec.decode(DLT_RAW, 31'000'000'000, other, other.size()));
  EXPECT_EQ(dec.stats().fragments_dropped, 100u);
  // The rest of datagram 99 now starts a reassembly of its own; nothing completes.
  const Bytes tail = ipv4(Bytes(8, 0), 17, 99, 1480, false);
  EXPECT_FALSE(dec.decode(DLT_RAW, 31'000'000'001, tail, tail.size()));
  EXPECT_EQ(dec.stats().reassembled, 0u);
}

TEST(PacketDecoder, CutMalformedAndForeignFramesAreCountedNotDelivered) {
  PacketDecoder dec;
  const Bytes good = ethernet(ipv4(udp_segment(1, 2, payload_of(200, 0))), 0x0800);
  // Cut by a 96-byte snap length: truncated.
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 0, std::span(good).first(96), good.size()));
  EXPECT_EQ(dec.stats().truncated, 1u);
  // The same bytes with no snap length: the IP header lies about its length.
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 0, std::span(good).first(96), 96));
  // A UDP length beyond the IP datagram; an IHL below 5; IPv6 with version 4.
  Bytes bad_udp = ipv4(udp_segment(1, 2, payload_of(20, 0)));
  bad_udp[20 + 4] = 0x7f;
  EXPECT_FALSE(dec.decode(DLT_RAW, 0, bad_udp, bad_udp.size()));
  Bytes bad_ihl = ipv4(udp_segment(1, 2, payload_of(20, 0)));
  bad_ihl[0] = 0x44;
  EXPECT_FALSE(dec.decode(DLT_RAW, 0, bad_ihl, bad_ihl.size()));
  EXPECT_EQ(dec.stats().malformed, 3u);
  // ICMP, ARP, and a runt Ethernet frame.
  const Bytes icmp = ethernet(ipv4(Bytes(20, 0), 1), 0x0800);
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 0, icmp, icmp.size()));
  const Bytes arp = ethernet(Bytes(28, 0), 0x0806);
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 0, arp, arp.size()));
  const Bytes runt(10, 0);
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 0, runt, runt.size()));
  EXPECT_EQ(dec.stats().not_udp, 1u);
  EXPECT_EQ(dec.stats().not_ip, 1u);
  EXPECT_EQ(dec.stats().malformed, 4u);
  EXPECT_EQ(dec.stats().frames, 7u);
  EXPECT_EQ(dec.stats().udp, 0u);
}

class TempFile {
 public:
  explicit TempFile(const std::string& ext)
      : path_(::testing::TempDir() + "capture_" + std::to_string(getpid()) + "_" +
              std::to_string(counter_++) + ext) {}
  ~TempFile() { std::remove(path_.c_str()); }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::string path_;
};

/// A pcap file written by libpcap (nanosecond timestamps, link type `link`).
void write_pcap(const std::string& path, int link,
                const std::vector<std::pair<std::int64_t, Bytes>>& frames,
                unsigned snaplen = 65535) {
  pcap_t* dead = pcap_open_dead_with_tstamp_precision(link, static_cast<int>(snaplen),
                                                      PCAP_TSTAMP_PRECISION_NANO);
  pcap_dumper_t* out = pcap_dump_open(dead, path.c_str());
  ASSERT_NE(out, nullptr);
  for (const auto& [t, f] : frames) {
    pcap_pkthdr h{};
    h.ts.tv_sec = t / 1'000'000'000;
    h.ts.tv_usec = t % 1'000'000'000;
    h.len = static_cast<bpf_u_int32>(f.size());
    h.caplen = std::min<bpf_u_int32>(h.len, snaplen);
    pcap_dump(reinterpret_cast<u_char*>(out), &h, f.data());
  }
  pcap_dump_close(out);
  pcap_close(dead);
}

TEST(CaptureFileReader, PcapWithNanosecondTimesIsStreamedDatagramByDatagram) {
  TempFile file(".pcap");
  const Bytes a = ethernet(ipv4(udp_segment(4000, 5004, payload_of(172, 1))), 0x0800);
  const Bytes arp = ethernet(Bytes(28, 0), 0x0806);
  const Bytes b = ethernet(ipv4(udp_segment(4000, 5005, payload_of(44, 2))), 0x0800);
  write_pcap(file.path(), DLT_EN10MB,
             {{1'700'000'000'000'000'001, a},
              {1'700'000'000'010'000'000, arp},
              {1'700'000'000'020'000'123, b}});
  CaptureFileReader reader(file.path());
  EXPECT_EQ(reader.link_type(), DLT_EN10MB);
  auto d1 = reader.next();
  ASSERT_TRUE(d1);
  EXPECT_EQ(d1->time_ns, 1'700'000'000'000'000'001);
  EXPECT_EQ(d1->payload.size(), 172u);
  auto d2 = reader.next();
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->time_ns, 1'700'000'000'020'000'123);
  EXPECT_EQ(port_of(d2->destination), 5005);
  EXPECT_FALSE(reader.next());
  EXPECT_TRUE(reader.error().empty());
  EXPECT_EQ(reader.stats().frames, 3u);
  EXPECT_EQ(reader.stats().not_ip, 1u);
}

TEST(CaptureFileReader, PcapngWrittenByHandIsRead) {
  // Section header, interface description (LINKTYPE_RAW, if_tsresol 10^-9), two enhanced
  // packet blocks: the layout of the pcapng specification, little-endian.
  Bytes f;
  auto le32 = [&](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) f.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  auto le16 = [&](std::uint16_t v) {
    f.push_back(static_cast<std::uint8_t>(v));
    f.push_back(static_cast<std::uint8_t>(v >> 8));
  };
  le32(0x0a0d0d0a), le32(28), le32(0x1a2b3c4d), le16(1), le16(0), le32(0xffffffff),
      le32(0xffffffff), le32(28);
  le32(1), le32(32), le16(101 /* LINKTYPE_RAW */), le16(0), le32(0);
  le16(9), le16(1), f.push_back(9), f.insert(f.end(), 3, 0);  // if_tsresol = 9: nanoseconds
  le16(0), le16(0), le32(32);
  const std::vector<std::pair<std::uint64_t, Bytes>> packets{
      {5'000'000'000, ipv4(udp_segment(1, 9000, payload_of(160, 4)))},
      {5'020'000'000, ipv6(udp_segment(1, 9000, payload_of(161, 5)), 17)}};
  for (const auto& [t, p] : packets) {
    const std::uint32_t padded = static_cast<std::uint32_t>((p.size() + 3) / 4 * 4);
    le32(6), le32(32 + padded), le32(0), le32(static_cast<std::uint32_t>(t >> 32)),
        le32(static_cast<std::uint32_t>(t)), le32(static_cast<std::uint32_t>(p.size())),
        le32(static_cast<std::uint32_t>(p.size()));
    append(f, p);
    f.insert(f.end(), padded - p.size(), 0);
    le32(32 + padded);
  }
  TempFile file(".pcapng");
  std::ofstream(file.path(), std::ios::binary)
      .write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
  CaptureFileReader reader(file.path());
  auto a = reader.next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->time_ns, 5'000'000'000);
  EXPECT_EQ(a->payload.size(), 160u);
  auto b = reader.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->time_ns, 5'020'000'000);
  EXPECT_EQ(b->destination.ss_family, AF_INET6);
  EXPECT_EQ(b->payload.size(), 161u);
  EXPECT_FALSE(reader.next());
  EXPECT_TRUE(reader.error().empty()) << reader.error();
}

TEST(CaptureFileReader, ATruncatedFileEndsWithAReasonAfterItsWholeRecords) {
  TempFile file(".pcap");
  std::vector<std::pair<std::int64_t, Bytes>> frames;
  for (int i = 0; i < 10; ++i)
    frames.emplace_back(i * 20'000'000, ipv4(udp_segment(1, 2, payload_of(160, 0))));
  write_pcap(file.path(), DLT_RAW, frames);
  // Cut in the middle of the last record (a capture killed while writing).
  truncate(file.path().c_str(), 24 + 9 * (16 + 188) + 16 + 50);
  CaptureFileReader reader(file.path());
  int n = 0;
  while (reader.next()) ++n;
  EXPECT_EQ(n, 9);
  EXPECT_NE(reader.error().find("truncated"), std::string::npos) << reader.error();
}

TEST(CaptureFileReader, SnapLengthCutRecordsAreCountedAndSkipped) {
  TempFile file(".pcap");
  write_pcap(file.path(), DLT_RAW,
             {{0, ipv4(udp_segment(1, 2, payload_of(400, 0)))},
              {1, ipv4(udp_segment(1, 2, payload_of(40, 0)))}},
             128);
  CaptureFileReader reader(file.path());
  auto d = reader.next();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->payload.size(), 40u);
  EXPECT_EQ(reader.stats().truncated, 1u);
}

TEST(CaptureFileReader, MissingGarbageAndForeignLinkTypeFilesAreClearErrors) {
  auto message = [](const std::string& path) {
    try {
      CaptureFileReader r(path);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("/nonexistent/x.pcap").find("--pcap /nonexistent/x.pcap"), std::string::npos);
  TempFile garbage(".pcap");
  std::ofstream(garbage.path()) << "this is not a capture file, it is some text\n";
  EXPECT_NE(message(garbage.path()).find("cannot read it as a pcap or pcapng capture"),
            std::string::npos);
  TempFile wifi(".pcap");
  write_pcap(wifi.path(), DLT_IEEE802_11, {});
  const std::string m = message(wifi.path());
  EXPECT_NE(m.find("IEEE802_11 (105) is not supported"), std::string::npos) << m;
}

}  // namespace
}  // namespace rtpnode

namespace rtpnode {
namespace {

sockaddr_storage v4(const char* host, std::uint16_t port) {
  sockaddr_storage ss{};
  auto& a = reinterpret_cast<sockaddr_in&>(ss);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, host, &a.sin_addr);
  return ss;
}

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::vector<std::string> texts(const std::deque<SipTcpStreams::Message>& out) {
  std::vector<std::string> t;
  for (const auto& m : out) t.emplace_back(m.bytes.begin(), m.bytes.end());
  return t;
}

}  // namespace

// RFC 3261 §18.3 framing over a TCP stream: a message split over segments, two messages (and
// RFC 5626 keep-alive CRLFs) in one segment, a body of Content-Length bytes (compact "l").
TEST(SipTcpStreams, FramesMessagesByContentLengthAcrossAndWithinSegments) {
  SipTcpStreams s;
  std::deque<SipTcpStreams::Message> out;
  const auto a = v4("192.0.2.10", 5060), b = v4("198.51.100.20", 40000);
  const std::string sdp = "v=0\r\nm=audio 4000 RTP/AVP 0\r\n";
  const std::string invite = sip_message("INVITE sip:bob@example.com SIP/2.0", "c1", sdp);
  std::string compact = "SIP/2.0 200 OK\r\ni: c1\r\nl: 4\r\n\r\nabcd";
  s.on_segment(a, b, 1000, true, false, false, {}, out);  // SYN: seq 1000, data from 1001
  s.on_segment(a, b, 1001, false, false, false, bytes_of(invite.substr(0, 50)), out);
  EXPECT_TRUE(out.empty());
  const std::string rest = invite.substr(50) + "\r\n\r\n" + compact;
  s.on_segment(a, b, 1051, false, false, false, bytes_of(rest), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(texts(out)[0], invite);
  EXPECT_EQ(texts(out)[1], compact);
  EXPECT_EQ(port_of(out[0].source), 5060);
  EXPECT_EQ(port_of(out[0].destination), 40000);
  EXPECT_EQ(s.stats().messages, 2u);
  EXPECT_EQ(s.stats().skipped_bytes, 0u);
}

// What a capture does to a stream: a retransmission (dropped), segments out of order (held
// until the hole fills), a capture that starts mid-message (bytes up to the next start line
// skipped), and a hole that never fills (skipped after kMaxHeld later segments; the stream
// resumes at the next message start).
TEST(SipTcpStreams, RetransmissionsReorderingAMidStreamStartAndAnUnfilledHole) {
  SipTcpStreams s;
  std::deque<SipTcpStreams::Message> out;
  const auto a = v4("192.0.2.10", 5060), b = v4("198.51.100.20", 40000);
  const std::string m1 = sip_message("BYE sip:bob@example.com SIP/2.0", "c1");
  const std::string m2 = sip_message("SIP/2.0 200 OK", "c2");
  // Mid-stream: the tail of an unseen message, then m1.
  const std::string first = "nt-Length: 0\r\n\r\n" + m1;
  std::uint32_t seq = 5000;
  s.on_segment(a, b, seq, false, false, false, bytes_of(first), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(texts(out)[0], m1);
  EXPECT_EQ(s.stats().skipped_bytes, 16u);
  seq += static_cast<std::uint32_t>(first.size());
  s.on_segment(a, b, seq - 10, false, false, false, bytes_of(m1.substr(m1.size() - 10)), out);
  EXPECT_EQ(out.size(), 1u) << "a retransmission is not a new message";
  // m2 in two segments, the second first.
  s.on_segment(a, b, seq + 20, false, false, false, bytes_of(m2.substr(20)), out);
  EXPECT_EQ(out.size(), 1u);
  s.on_segment(a, b, seq, false, false, false, bytes_of(m2.substr(0, 20)), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(texts(out)[1], m2);
  seq += static_cast<std::uint32_t>(m2.size());
  // A hole of 30 bytes (the middle of a message) that never fills; then m1 copies follow.
  const std::string lost = sip_message("INFO sip:x SIP/2.0", "c3");
  std::uint32_t at = seq + static_cast<std::uint32_t>(lost.size());
  s.on_segment(a, b, seq + 30, false, false, false, bytes_of(lost.substr(30)), out);
  for (std::size_t k = 0; k < SipTcpStreams::kMaxHeld; ++k) {
    s.on_segment(a, b, at, false, false, false, bytes_of(m1), out);
    at += static_cast<std::uint32_t>(m1.size());
  }
  EXPECT_EQ(s.stats().gaps, 1u);
  // The half message after the hole is skipped; the m1 copies are found.
  ASSERT_EQ(out.size(), 2 + SipTcpStreams::kMaxHeld);
  for (std::size_t k = 2; k < out.size(); ++k) EXPECT_EQ(texts(out)[k], m1);
}

// Bounded whatever the capture: kMaxFlows directions (the least recently used dropped), a
// header that never ends or a Content-Length beyond kMaxBuffered dropped, RST forgets.
TEST(SipTcpStreams, FlowsAndBuffersAreBounded) {
  SipTcpStreams s;
  std::deque<SipTcpStreams::Message> out;
  const auto b = v4("198.51.100.20", 5060);
  for (std::uint16_t p = 0; p < SipTcpStreams::kMaxFlows + 10; ++p)
    s.on_segment(v4("192.0.2.10", static_cast<std::uint16_t>(10000 + p)), b, 1, false, false, false,
                 bytes_of("INVITE sip:a SIP/2.0\r\nCall-ID: x\r\n"), out);
  EXPECT_EQ(s.flows(), SipTcpStreams::kMaxFlows);
  EXPECT_EQ(s.stats().flows_dropped, 10u);
  const auto a = v4("192.0.2.11", 5060);
  s.on_segment(a, b, 1, false, false, true, {}, out);  // RST of an unknown flow: nothing
  const std::string big = "INVITE sip:a SIP/2.0\r\nContent-Length: 99999999\r\n\r\n";
  s.on_segment(a, b, 1, false, false, false, bytes_of(big), out);
  EXPECT_EQ(s.stats().oversized, 1u);
  std::uint32_t seq = 1 + static_cast<std::uint32_t>(big.size());
  const std::string header_line = "X-Long: " + std::string(1000, 'y') + "\r\n";
  std::string endless = "INVITE sip:a SIP/2.0\r\n";
  while (endless.size() <= SipTcpStreams::kMaxBuffered) endless += header_line;
  s.on_segment(a, b, seq, false, false, false, bytes_of(endless), out);
  EXPECT_EQ(s.stats().oversized, 2u);
  EXPECT_TRUE(out.empty());
  seq += static_cast<std::uint32_t>(endless.size());
  const std::string ok = sip_message("SIP/2.0 180 Ringing", "c9");
  s.on_segment(a, b, seq, false, false, false, bytes_of(ok), out);
  ASSERT_EQ(out.size(), 1u) << "the stream resumes at the next message";
  EXPECT_EQ(texts(out)[0], ok);
}

// Through the capture's decoder: an IPv4 TCP segment carrying two SIP messages gives the first
// from decode() and the second from take_ready(), marked as TCP with the TCP ports.
TEST(PacketDecoder, SipOverTcpSegmentsGiveTheirMessages) {
  PacketDecoder dec;
  const std::string m1 = sip_message("INVITE sip:bob@example.com SIP/2.0", "c1");
  const std::string m2 = sip_message("ACK sip:bob@example.com SIP/2.0", "c1");
  const Bytes syn = ethernet(ipv4(tcp_segment(5060, 5062, 7, 0x02, ""), 6), 0x0800);
  EXPECT_FALSE(dec.decode(DLT_EN10MB, 1, syn, syn.size()));
  const Bytes data = ethernet(ipv4(tcp_segment(5060, 5062, 8, 0x18, m1 + m2), 6), 0x0800);
  auto first = dec.decode(DLT_EN10MB, 2, data, data.size());
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->tcp);
  EXPECT_EQ(text(first->payload), m1);
  EXPECT_EQ(port_of(first->source), 5060);
  EXPECT_EQ(port_of(first->destination), 5062);
  EXPECT_EQ(host_of(first->destination), "198.51.100.20");
  EXPECT_EQ(first->time_ns, 2);
  auto second = dec.take_ready();
  ASSERT_TRUE(second);
  EXPECT_EQ(text(second->payload), m2);
  EXPECT_FALSE(dec.take_ready());
  EXPECT_EQ(dec.tcp_stats().messages, 2u);
  EXPECT_EQ(dec.stats().udp, 0u);
  EXPECT_EQ(dec.stats().not_udp, 0u);
}

}  // namespace rtpnode

namespace rtpnode {
namespace {

sockaddr_storage endpoint_of(const std::string& host, std::uint16_t port) {
  sockaddr_storage ss{};
  if (host.find(':') == std::string::npos) {
    auto& sin = reinterpret_cast<sockaddr_in&>(ss);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, host.c_str(), &sin.sin_addr);
  } else {
    auto& sin6 = reinterpret_cast<sockaddr_in6&>(ss);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    inet_pton(AF_INET6, host.c_str(), &sin6.sin6_addr);
  }
  return ss;
}

}  // namespace

// Issue #14 (offline rendering): the replay routes through an index that catches up as discovery
// appends listens; it gives route()'s answer -- the first listen in order, RTP before RTCP, a
// wildcard or an exact address -- for every datagram, including overlapping ports.
TEST(CaptureReplay, IndexedRoutingAgreesWithTheLinearScanAsListensAreAppended) {
  TempFile file(".pcap");
  write_pcap(file.path(), DLT_EN10MB, {});
  uv_loop_t loop;
  uv_loop_init(&loop);
  const std::vector<std::string> hosts{"10.0.0.1", "10.0.0.2", "0.0.0.0",       "::1",
                                       "::",       "fe80::2",  "not-an-address"};
  std::vector<ListenSpec> listens;
  {
    CaptureReplay replay(&loop, file.path(), listens);
    std::uint64_t state = 12345;
    auto next = [&state](std::uint64_t n) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return (state >> 33) % n;
    };
    int routed = 0, rtcp = 0;
    for (int round = 0; round < 40; ++round) {
      ListenSpec l;
      l.address = hosts[next(hosts.size())];
      l.port = static_cast<std::uint16_t>(5000 + next(12));
      if (next(5) == 0) l.raw = PayloadFormat{Codec::l16, 8000, 8000, 1};
      listens.push_back(l);
      for (int i = 0; i < 50; ++i) {
        CapturedDatagram d;
        const std::string h = hosts[next(hosts.size() - 1)];
        d.destination = endpoint_of(h == "0.0.0.0" ? "10.0.0.3"
                                    : h == "::"    ? "::2"
                                                   : h,
                                    static_cast<std::uint16_t>(5000 + next(14)));
        const auto want = CaptureReplay::route(listens, d);
        EXPECT_EQ(replay.route_indexed(d), want) << "round " << round << " datagram " << i;
        routed += want.has_value();
        rtcp += want.has_value() && want->second;
      }
    }
    EXPECT_GT(routed, 500);  // the comparison covered hits, RTCP ports included
    EXPECT_GT(rtcp, 50);
    // The replay's timer belongs to the loop: closed before the replay goes.
    uv_walk(
        &loop, [](uv_handle_t* h, void*) { uv_close(h, nullptr); }, nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace rtpnode
