// The demultiplexer: every datagram from the packet input (udp_listener.hpp) goes through here
// -- --allow, headerless PCM, RTP (RFC 3550 §5.1 checks, payload type map), RTCP on port + 1 or
// muxed (RFC 5761) -- to its source (source_table.hpp admits new ones) or to the RTCP session
// (rtcp_session.hpp). RTCP about a source counts only from the host its RTP comes from (RFC 3550
// §8.2). Bad input is counted and dropped with one warning per kind.
// Thread: loop only.
#pragma once

#include <sys/socket.h>

#include <array>
#include <functional>
#include <unordered_map>
#include <cstdint>
#include <ostream>
#include <span>
#include <vector>

#include "node/config.hpp"
#include "node/device_clock.hpp"
#include "node/rtcp_session.hpp"
#include "node/source_table.hpp"
#include "node/udp_listener.hpp"
#include "rtp/rtp_header.hpp"
#include "rtp/telephone_event.hpp"

namespace rtpnode {

/// The demux's counters (loop thread).
struct DemuxStats {
  std::uint64_t datagrams = 0;  ///< UDP datagrams received on every listen socket
  std::array<std::uint64_t, kRtpParseStatusCount> rejected{};  ///< by RtpParseStatus (index)
  std::uint64_t unknown_payload_type = 0;  ///< valid RTP with a PT no --payload maps, dropped
  std::uint64_t rtcp_packets = 0;          ///< valid RTCP compounds (RTCP port or muxed on RTP)
  std::uint64_t rtcp_malformed = 0;        ///< RTCP datagrams failing RFC 3550 A.2 checks
  std::uint64_t sender_reports = 0;        ///< SR packets received
  std::uint64_t byes = 0;                  ///< BYE SSRCs received
  std::uint64_t rtcp_foreign = 0;          ///< SR/BYE about a source from another host than its RTP
  std::uint64_t not_allowed = 0;           ///< datagrams from outside every --allow block
  std::uint64_t telephone_event_packets = 0;  ///< RFC 4733 packets (PT mapped to telephone-event)
  std::uint64_t telephone_events = 0;         ///< events reported (DTMF digits and others)
  /// senders admitted as sources of their own because another sender on the same port already
  /// used their SSRC (RFC 3550 §8.2 collision; collision_key)
  std::uint64_t ssrc_collisions = 0;
};

class Demux {
 public:
  /// `cfg` (listens, payloads, allow) and the parts must outlive the demux; warnings go to `log`.
  Demux(const NodeConfig& cfg, SourceTable& sources, RtcpSession& rtcp, std::ostream& log);
  /// One datagram; sources it reaches decode and render on `clock`.
  void on_datagram(const ReceivedDatagram& d, const DeviceClock& clock);
  /// An RFC 4733 event completed on listen `listen` by SSRC `ssrc` from `from`; `clock_rate`:
  /// its payload type's (durations are in its ticks).
  using EventSink =
      std::function<void(const TelephoneEventReceiver::Event& e, std::size_t listen,
                         const sockaddr* from, std::uint32_t ssrc, std::uint32_t clock_rate)>;
  /// Where telephone-events go (RTP whose payload type maps to telephone-event: --payload
  /// 101=telephone-event/8000, or an SDP's rtpmap). Unset: they are counted only.
  void set_event_sink(EventSink sink) { event_sink_ = std::move(sink); }
  /// Reports the events still in progress (their end packets not seen): at the end of a
  /// capture or at exit.
  void flush_events();
  [[nodiscard]] const DemuxStats& stats() const noexcept { return stats_; }
  /// True when --allow admits `from` (or there is no --allow); else counts (not_allowed) and
  /// warns once. Also asked for SAP announcements. Thread: loop.
  bool allowed(const sockaddr* from);

 private:
  void on_rtp_port(const ListenSpec& spec, std::span<const std::uint8_t> data, const sockaddr* from,
                   mono_ns_t now, const DeviceClock& clock);
  void on_rtcp(const ListenSpec& spec, std::span<const std::uint8_t> data, const sockaddr* from,
               mono_ns_t now);
  void on_telephone_event(const ListenSpec& spec, const RtpHeaderView& h, const sockaddr* from,
                          std::uint32_t clock_rate, mono_ns_t now);
  /// Prints make_text() once per kind; later calls of that kind cost a flag test.
  template <typename MakeText>
  void warn_once(std::size_t kind, MakeText&& make_text);
  /// The source key RTCP about `ssrc` on `port` from `from` is for: the first sender's, or a
  /// colliding sender's (collision_key) whose RTP transport address matches. Thread: loop.
  [[nodiscard]] std::uint64_t rtcp_key(std::uint16_t port, std::uint32_t ssrc,
                                       const sockaddr* from) const;

  const NodeConfig& cfg_;
  SourceTable& sources_;
  RtcpSession& rtcp_;
  std::ostream& log_;
  DemuxStats stats_;
  std::vector<bool> warned_;
  struct EventStream {
    TelephoneEventReceiver receiver;
    std::size_t listen = 0;
    std::uint32_t clock_rate = 8000;
    sockaddr_storage from{};
  };
  /// Per (port, SSRC): at most 4 x --max-sources + 16; a new SSRC beyond is counted only.
  std::unordered_map<std::uint64_t, EventStream> event_streams_;
  EventSink event_sink_;
};

}  // namespace rtpnode
