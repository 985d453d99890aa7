// Call discovery for the VoIP tap (issue #14): which UDP flows of a capture are RTP, what they
// carry and which call and side they belong to -- without knowing ports or payload types.
//
//  - SIP over UDP on any port (RFC 3261; default 5060 is not required): requests and responses
//    with Call-ID, From, To and CSeq (compact forms i, f, t, c, l too) and an SDP body
//    (RFC 4566 / 8866, offer/answer RFC 3264): each audio m= line gives the address and port
//    where that party receives RTP (media-level c= over session-level), its payload types and
//    a=rtpmap mappings. The caller is whoever sent the first INVITE of the Call-ID; the port the
//    caller's SDP names receives the callee's voice (right, channel 1), the port the callee's
//    SDP names receives the caller's voice (left, channel 0). Re-INVITEs and updates add or move
//    endpoints; BYE ends the call.
//  - Without SIP, RTP is found heuristically, as rtpbreak does: kConfirmPackets packets of one
//    flow (source and destination address and port) with version 2, a payload type outside
//    RTCP's 72..76, one SSRC, consecutive sequence numbers and a non-decreasing timestamp. The
//    packets seen while deciding are handed back to be played. Flows found this way are paired
//    into calls by reversed addresses: the first found goes left, its reverse right.
//
// Pure logic on CapturedDatagram (capture_file.hpp); bounded: at most kMaxCandidates flows under
// observation (the oldest forgotten) and kMaxCalls calls. Thread: one at a time (the loop).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "node/capture_file.hpp"
#include "rtp/payload_format.hpp"
#include "rtp/sdp.hpp"

namespace rtpnode {

/// The audio stream an SDP describes (the first m=audio with a non-zero port).
using SdpAudio = SdpMedia;
/// The first audio stream of an SDP body that is not declined (port 0), through parse_sdp (the
/// one SDP parser: rtp/sdp.hpp); none when there is no such stream or the body does not parse.
/// Any thread; pure.
std::optional<SdpAudio> parse_sdp_audio(std::string_view body);

/// The parts of a SIP message (RFC 3261 §7) call discovery uses.
struct SipMessage {
  bool request = false;
  std::string method;  ///< requests: INVITE, ACK, BYE, ...
  int status = 0;      ///< responses: 100..699
  std::string call_id, from, to;
  std::string cseq_method;  ///< the method CSeq names (for responses: which request)
  std::string content_type;
  std::string body;
};
/// Parses one SIP message carried in a UDP datagram; none when it is not SIP. Header names are
/// case-insensitive, compact forms accepted, folded lines joined. Any thread; pure.
std::optional<SipMessage> parse_sip(std::span<const std::uint8_t> datagram);

/// A place RTP is sent to, and what plays from it.
struct MediaEndpoint {
  sockaddr_storage address{};  ///< destination IP and UDP port of the RTP
  std::size_t call = 0;        ///< index in CallDiscovery::calls()
  int side = 0;                ///< 0: the caller's voice (left), 1: the callee's (right)
  /// Payload types as the SDP maps them, over RFC 3551's static ones, then those the call's
  /// other SDPs map (filled in as they come); unset: static only.
  std::shared_ptr<const PayloadMap> payloads;
  std::string codecs;  ///< "PCMA/8000 telephone-event/8000" (SDP's names), for reports
};

/// A call as discovery knows it.
struct DiscoveredCall {
  std::string id;        ///< SIP Call-ID, or "rtp:ADDR:PORT-ADDR:PORT" for a heuristic pair
  std::string from, to;  ///< SIP From and To header values ("" for heuristic calls)
  bool sip = false;
  std::int64_t start_ns = 0;             ///< capture time of the first INVITE (or first RTP packet)
  std::int64_t end_ns = 0;               ///< capture time of the BYE; 0 while up
  sockaddr_storage caller_signalling{};  ///< who sent the first INVITE
};

class CallDiscovery {
 public:
  static constexpr int kConfirmPackets = 3;
  static constexpr std::size_t kMaxCandidates = 1024;
  static constexpr std::size_t kMaxCalls = 4096;

  /// What one datagram told discovery.
  struct Result {
    bool sip = false;        ///< it was a SIP message (not media)
    bool candidate = false;  ///< held by the RTP heuristic (handed back in `held` if confirmed)
    /// Endpoints found by this datagram (SIP SDP, or a confirmed heuristic flow).
    std::vector<MediaEndpoint> new_endpoints;
    /// A heuristic flow was confirmed by this datagram: its earlier packets, oldest first
    /// (this datagram not included), to be played before it.
    std::vector<std::pair<std::int64_t, std::vector<std::uint8_t>>> held;
  };

  /// `heuristic`: also look for RTP without SIP.
  explicit CallDiscovery(bool heuristic) : heuristic_(heuristic) {}
  /// Looks at one datagram of the capture. `known`: its destination already plays (the
  /// heuristic then leaves it alone).
  Result on_datagram(const CapturedDatagram& d, bool known);
  [[nodiscard]] const std::vector<DiscoveredCall>& calls() const noexcept { return calls_; }
  [[nodiscard]] std::uint64_t sip_messages() const noexcept { return sip_messages_; }
  [[nodiscard]] std::uint64_t sdp_without_audio() const noexcept { return sdp_without_audio_; }

 private:
  struct Candidate {
    std::string key;  ///< source + destination address bytes and ports
    CapturedDatagram last{};
    std::uint32_t ssrc = 0;
    std::uint16_t seq = 0;
    std::uint32_t timestamp = 0;
    int count = 0;
    std::vector<std::pair<std::int64_t, std::vector<std::uint8_t>>> packets;
  };
  void on_sip(const SipMessage& m, const CapturedDatagram& d, Result& out);
  void on_rtp_candidate(const CapturedDatagram& d, Result& out);
  std::size_t call_for(const std::string& id, std::int64_t time_ns);

  /// Per SIP call: every mapping its SDPs made, and the maps of its endpoints (shared with the
  /// listens, filled in as later SDPs map more).
  struct CallMaps {
    std::vector<std::pair<std::uint8_t, PayloadFormat>> mappings;
    std::vector<std::shared_ptr<PayloadMap>> endpoints;
  };
  bool heuristic_;
  std::vector<DiscoveredCall> calls_;
  std::map<std::size_t, CallMaps> call_maps_;
  std::map<std::string, std::size_t> call_index_;
  std::deque<Candidate> candidates_;
  /// Confirmed heuristic flows: "dst->src" key of each, to pair a reverse flow with its call.
  std::map<std::string, std::size_t> heuristic_flows_;
  std::uint64_t sip_messages_ = 0;
  std::uint64_t sdp_without_audio_ = 0;
};

/// "ADDR:PORT" ("[ADDR]:PORT" for IPv6) of an IP socket address. Any thread; pure.
std::string endpoint_text(const sockaddr_storage& ss);

}  // namespace rtpnode
