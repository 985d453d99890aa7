// Capture files as a packet source (issue #14, VoIP tap): the UDP datagrams of a pcap or pcapng
// file (libpcap reads both), each with its capture time and its IP addresses and ports, for the
// capture replay (capture_replay.hpp) to hand to the demux as if they had just arrived.
//
// Link layers: Ethernet (802.1Q / 802.1ad VLAN tags, stacked), Linux cooked capture v1 and v2
// (SLL, SLL2: `tcpdump -i any`), raw IP (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6) and BSD
// loopback (NULL, LOOP). Network: IPv4 (RFC 791; fragments reassembled, RFC 815's hole rule)
// and IPv6 (RFC 8200; hop-by-hop, routing and destination options skipped, fragments
// reassembled). Transport: UDP (RFC 768), and TCP (RFC 793) for the SIP messages it carries
// (node/sip_tcp.hpp puts the streams back together); anything else is counted and skipped.
//
// Bounded whatever the file: at most kMaxReassemblies datagrams in reassembly at once (the
// oldest is dropped for a new one), each at most 65535 bytes, and a reassembly not complete
// kReassemblyTimeoutNs of capture time after its first fragment is dropped (Linux's
// ipfrag_time). The file is streamed, never loaded.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "node/sip_tcp.hpp"

typedef struct pcap pcap_t;

namespace rtpnode {

/// One UDP datagram of a capture. `payload` is valid until the next call of the producer.
struct CapturedDatagram {
  std::int64_t time_ns = 0;        ///< capture time, ns since the Unix epoch (the capturing host's)
  sockaddr_storage source{};       ///< sender's IP address and UDP port
  sockaddr_storage destination{};  ///< receiver's IP address and UDP port
  std::span<const std::uint8_t> payload;  ///< the UDP payload, or a SIP message (tcp)
  bool tcp = false;  ///< a SIP message cut from a TCP stream (ports are TCP's), not a datagram
};

/// What a capture held besides UDP datagrams (counts of captured frames unless said).
struct CaptureStats {
  std::uint64_t frames = 0;             ///< records read from the file
  std::uint64_t udp = 0;                ///< UDP datagrams delivered (reassembled ones once)
  std::uint64_t not_ip = 0;             ///< ARP, LLDP, other EtherTypes or address families
  std::uint64_t not_udp = 0;            ///< IP carrying ICMP, SCTP, ... (neither UDP nor TCP)
  std::uint64_t truncated = 0;          ///< cut by the capture's snap length before the UDP end
  std::uint64_t malformed = 0;          ///< bad IP/UDP header lengths or versions
  std::uint64_t fragments = 0;          ///< IPv4/IPv6 fragments taken into reassembly
  std::uint64_t reassembled = 0;        ///< datagrams completed from fragments
  std::uint64_t fragments_dropped = 0;  ///< reassemblies abandoned (timeout, overlap, too many)
};

/// Link-layer and IP decoding with fragment reassembly, without libpcap (so that tests can feed
/// frames directly). Thread: one at a time (not shared).
class PacketDecoder {
 public:
  /// Reassemblies in progress at once; a new one beyond this drops the oldest.
  static constexpr std::size_t kMaxReassemblies = 64;
  /// Capture time after the first fragment within which a datagram must complete (30 s).
  static constexpr std::int64_t kReassemblyTimeoutNs = 30'000'000'000;

  /// True when `link_type` (a DLT_ value as pcap_datalink() returns it) is one of those in the
  /// file comment.
  [[nodiscard]] static bool supported(int link_type) noexcept;
  /// The UDP datagram in `frame` (captured bytes of one record; `wire_length` is the length on
  /// the wire, >= frame.size() when the snap length cut it), or none: not UDP, a fragment
  /// awaiting the rest, or bad -- counted in stats(). The returned payload is valid until the
  /// next call. `link_type` must be supported().
  std::optional<CapturedDatagram> decode(int link_type, std::int64_t time_ns,
                                         std::span<const std::uint8_t> frame,
                                         std::size_t wire_length);
  [[nodiscard]] const CaptureStats& stats() const noexcept { return stats_; }
  CaptureStats& stats() noexcept { return stats_; }
  /// The next SIP message a TCP segment completed beyond the one decode() returned (a segment
  /// may complete several), or none. Call it until none before decoding the next frame.
  std::optional<CapturedDatagram> take_ready();
  [[nodiscard]] const SipTcpStats& tcp_stats() const noexcept { return sip_tcp_.stats(); }

 private:
  struct Reassembly {
    std::int64_t first_ns = 0;
    int family = 0;
    std::uint8_t key[36]{};  ///< source, destination, identification (and protocol for IPv4)
    std::vector<std::uint8_t> data;  ///< the fragmentable part, by offset
    std::vector<std::pair<std::uint32_t, std::uint32_t>> have;  ///< [begin, end) received
    std::uint32_t total = 0;  ///< the payload's length once the last fragment is seen (0: not yet)
    std::uint8_t protocol = 0;
  };
  std::optional<CapturedDatagram> ipv4(std::int64_t time_ns, std::span<const std::uint8_t> ip,
                                       bool cut);
  std::optional<CapturedDatagram> ipv6(std::int64_t time_ns, std::span<const std::uint8_t> ip,
                                       bool cut);
  std::optional<CapturedDatagram> udp(std::int64_t time_ns, sockaddr_storage src,
                                      sockaddr_storage dst, std::span<const std::uint8_t> l4,
                                      bool cut);
  std::optional<CapturedDatagram> tcp(std::int64_t time_ns, sockaddr_storage src,
                                      sockaddr_storage dst, std::span<const std::uint8_t> l4,
                                      bool cut);
  /// Adds a fragment; the complete payload when it was the last missing piece.
  std::optional<std::span<const std::uint8_t>> fragment(std::int64_t time_ns, int family,
                                                        std::span<const std::uint8_t> key,
                                                        std::uint8_t protocol, std::uint32_t offset,
                                                        bool more,
                                                        std::span<const std::uint8_t> bytes);
  void expire(std::int64_t time_ns);

  CaptureStats stats_;
  std::deque<Reassembly> reassemblies_;
  std::vector<std::uint8_t> complete_;  ///< the last reassembled payload (returned span)
  SipTcpStreams sip_tcp_;
  std::deque<SipTcpStreams::Message> ready_;  ///< complete SIP messages not returned yet
  SipTcpStreams::Message current_;            ///< the message last returned (its span)
  std::int64_t ready_time_ns_ = 0;            ///< capture time of the segment that made them
};

/// A pcap or pcapng file read record by record through libpcap. Thread: one at a time.
class CaptureFileReader {
 public:
  /// Opens `path` ("-" = standard input). Throws std::runtime_error naming the file and the
  /// reason: missing or unreadable, not a capture (libpcap's message), or a link type that is
  /// not supported (its name and number, and those that are).
  explicit CaptureFileReader(const std::string& path);
  ~CaptureFileReader();
  CaptureFileReader(const CaptureFileReader&) = delete;
  CaptureFileReader& operator=(const CaptureFileReader&) = delete;

  /// The next UDP datagram, or none at the end of the file. A file that ends inside a record
  /// (a capture cut short) or is corrupt ends there too, with error() saying so.
  std::optional<CapturedDatagram> next();
  /// Empty, or why the file ended early ("truncated dump file; ...", libpcap's text).
  [[nodiscard]] const std::string& error() const noexcept { return error_; }
  [[nodiscard]] const CaptureStats& stats() const noexcept { return decoder_.stats(); }
  [[nodiscard]] const SipTcpStats& tcp_stats() const noexcept { return decoder_.tcp_stats(); }
  [[nodiscard]] int link_type() const noexcept { return link_type_; }

 private:
  pcap_t* pcap_ = nullptr;
  int link_type_ = 0;
  std::string path_;
  std::string error_;
  PacketDecoder decoder_;
};

/// A live capture of an interface (--capture IFACE): promiscuous, immediate delivery (no
/// kernel buffering delay), nanosecond kernel timestamps, an optional BPF filter. Read without
/// blocking when its descriptor is readable. Thread: one at a time (the loop).
class LiveCapture {
 public:
  /// Opens `iface` ("any" = every interface). Throws std::runtime_error naming the interface
  /// and the fix: a missing CAP_NET_RAW (run as root, or `setcap cap_net_raw,cap_net_admin+ep`
  /// on the binary), an unknown interface, a filter that does not compile (libpcap's message),
  /// or an unsupported link type.
  LiveCapture(const std::string& iface, const std::string& filter);
  ~LiveCapture();
  LiveCapture(const LiveCapture&) = delete;
  LiveCapture& operator=(const LiveCapture&) = delete;
  /// A descriptor that polls readable when packets wait.
  [[nodiscard]] int fd() const noexcept { return fd_; }
  /// The next UDP datagram already captured, or none (nothing waiting, or an error: error()).
  /// `time_ns` is the kernel's capture time on CLOCK_REALTIME.
  std::optional<CapturedDatagram> next();
  [[nodiscard]] const std::string& error() const noexcept { return error_; }
  [[nodiscard]] const CaptureStats& stats() const noexcept { return decoder_.stats(); }
  [[nodiscard]] const SipTcpStats& tcp_stats() const noexcept { return decoder_.tcp_stats(); }
  /// Packets the kernel dropped for want of buffer (pcap_stats), since the start.
  [[nodiscard]] std::uint64_t kernel_drops() const noexcept;

 private:
  pcap_t* pcap_ = nullptr;
  int fd_ = -1;
  int link_type_ = 0;
  std::string error_;
  PacketDecoder decoder_;
};

}  // namespace rtpnode
