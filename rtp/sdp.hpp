// Session descriptions (SDP, RFC 8866, formerly RFC 4566): the audio streams a description
// announces, for `--sdp FILE`, SAP announcements (RFC 2974) and SIP offers/answers (RFC 3264).
// One parser serves all three.
//
// Thread: any; every function here is pure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtp/payload_format.hpp"

namespace rtpnode {

/// One m=audio section with what applies to it (media-level lines override session-level ones).
struct SdpMedia {
  std::string address;     ///< c= connection address, IPv4 or IPv6 literal, "/TTL[/N]" removed
  int ttl = 0;             ///< c= IPv4 multicast TTL (RFC 8866 §5.7), 0 when none
  std::uint16_t port = 0;  ///< m= port; 0 = the stream is declined (RFC 3264 §6)
  std::string protocol;    ///< RTP/AVP, RTP/AVPF, RTP/SAVP, ...
  std::vector<int> payload_types;          ///< the m= line's formats, in order (0..127)
  std::map<int, std::string> rtpmap;       ///< PT -> "encoding/clock[/channels]" as written
  std::map<int, std::string> fmtp;         ///< PT -> format parameters as written (RFC 8866 §6.15)
  double ptime_ms = 0;                     ///< a=ptime (ms, fractional for AES67's 0.125), 0 = none
  std::optional<std::uint16_t> rtcp_port;  ///< a=rtcp (RFC 3605), when not port + 1
  bool rtcp_mux = false;                   ///< a=rtcp-mux (RFC 5761)
  /// a=source-filter: incl (RFC 4570): the only senders of this stream (source-specific
  /// multicast); empty = any. "excl" filters are not followed (listed in `unsupported`).
  std::vector<std::string> source_addresses;
  std::string ts_refclk;  ///< a=ts-refclk value (RFC 7273 §4.8), e.g. "ptp=IEEE1588-2008:..."
  std::string mediaclk;   ///< a=mediaclk value (RFC 7273 §5), e.g. "direct=0"
  std::string direction;  ///< sendrecv (default), sendonly, recvonly or inactive
  std::string label;      ///< i= (media title) or the session's s= when none

  /// The payload map this stream uses: RFC 3551's static types, then every a=rtpmap of the
  /// m= line that rtpnode decodes (Opus with fmtp sprop-stereo=0 decodes one channel). Payload
  /// types it cannot decode are listed in `skipped` ("PT name: reason").
  [[nodiscard]] PayloadMap payloads(std::vector<std::string>* skipped = nullptr) const;
  /// The format of `pt` from its a=rtpmap and a=fmtp: Opus sprop-stereo=0 is one channel (RFC
  /// 7587 §7); AMR octet-align=1 is the octet-aligned mode (RFC 4867 §8.1), and AMR with
  /// crc=1, robust-sorting=1 or interleaving is refused. Errors: nullopt, `error` says why
  /// (no a=rtpmap included).
  [[nodiscard]] std::optional<PayloadFormat> format_of(int pt, std::string& error) const;
  /// "L24/48000/2 (PT 97)" style list of the m= line's formats, for messages.
  [[nodiscard]] std::string codecs() const;
};

/// A parsed description.
struct SessionDescription {
  std::string origin;                    ///< o= value ("user id version IN IP4 addr")
  std::string name;                      ///< s=
  std::vector<SdpMedia> audio;           ///< every m=audio section, declined ones included (port 0)
  std::vector<std::string> unsupported;  ///< lines that were understood but not followed
};

/// Parses `text` (CRLF or LF lines; lines that are not "X=..." are skipped, as RFC 8866 §5 lets
/// a parser ignore what it does not know). Only m=audio sections are kept; each needs a
/// connection address at session or media level. Errors: nullopt with `error` naming the first
/// problem ("bad connection line ...", "bad m= line ...", "m=audio PORT without a connection
/// address (c=)", "no m=audio section").
std::optional<SessionDescription> parse_sdp(std::string_view text, std::string& error);

}  // namespace rtpnode
