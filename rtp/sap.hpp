// Session Announcement Protocol (SAP, RFC 2974): the packets that announce and delete
// multicast sessions, each carrying a session description (SDP, rtp/sdp.hpp). PipeWire's
// module-rtp-sink announces to 224.0.0.56:9875 every 5 s, AES67 devices to 239.255.255.255:9875,
// and RFC 2974's own global group is 224.2.127.254:9875.
//
// Thread: any; every function here is pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace rtpnode {

/// The groups `--sap` listens on when no address is given (all on port kSapPort).
inline constexpr const char* kSapGroups[] = {"224.2.127.254", "224.0.0.56", "239.255.255.255"};
inline constexpr std::uint16_t kSapPort = 9875;

/// The largest payload a compressed announcement may inflate to (RFC 2974 §6 recommends
/// announcements of at most 1 kB).
inline constexpr std::size_t kMaxSapPayload = 65536;

/// One SAP packet (RFC 2974 §3).
struct SapMessage {
  bool deletion = false;          ///< T bit: 1 = session deletion, 0 = announcement
  std::uint16_t msg_id_hash = 0;  ///< with `origin`, identifies the announcement
  std::string origin;             ///< originating source, IPv4 or IPv6 text form
  std::string payload_type;       ///< MIME type as sent ("application/sdp"), "" when absent
  std::string sdp;                ///< the payload: a session description
};

/// Parses one SAP datagram: version 1, IPv4 or IPv6 originating source, authentication data
/// skipped (not verified: RFC 2974 §7 leaves its format to the profile), an optional
/// NUL-terminated payload type (absent when the payload starts with "v=0", §3). Errors: nullopt
/// with `error` naming the problem: too short, version not 1, encrypted (E bit), auth length
/// beyond the packet, a compressed payload (C bit, zlib) that is not valid or inflates beyond
/// kMaxSapPayload bytes, a payload type other than application/sdp, an empty payload.
std::optional<SapMessage> parse_sap(std::span<const std::uint8_t> bytes, std::string& error);

/// Builds a SAP datagram (for rtpsend --sap and the tests): IPv4 origin `origin` (dotted quad),
/// with the payload type "application/sdp". Empty when `origin` is not an IPv4 literal.
std::string build_sap(bool deletion, std::uint16_t msg_id_hash, const std::string& origin,
                      const std::string& sdp);

}  // namespace rtpnode
