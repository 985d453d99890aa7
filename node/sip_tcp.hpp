// SIP over TCP in a capture (issue #14, VoIP tap): the TCP segments of a capture put back into
// byte streams per connection direction, cut into SIP messages by RFC 3261 §18.3's framing (a
// message is its header up to the empty line, then Content-Length bytes of body; mandatory on
// stream transports), for call discovery to read as it reads SIP over UDP.
//
// A capture is not a TCP endpoint: it may start inside a connection, miss segments, or see
// retransmissions. So: a direction's stream starts at its first segment seen (SYN or not);
// retransmitted bytes are dropped; a segment beyond a hole waits (at most kMaxHeld per
// direction) for the hole to fill, and a hole that never fills is skipped (counted in `gaps`);
// after a start mid-message or a skipped hole, bytes are dropped up to the next line that
// starts a SIP message (a request line "METHOD URI SIP/2.0" or a status line "SIP/2.0 NNN").
// RFC 5626 keep-alive CRLFs between messages are skipped.
//
// Bounded whatever the capture: at most kMaxFlows directions at once (the least recently used
// is dropped for a new one), each holding at most kMaxBuffered bytes (a message larger than
// that is dropped, counted in `oversized`).
//
// Thread: one at a time (the capture reader's). Pure bookkeeping: no I/O.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace rtpnode {

/// Counts of what the TCP reassembly saw.
struct SipTcpStats {
  std::uint64_t segments = 0;       ///< TCP segments looked at (with or without payload)
  std::uint64_t messages = 0;       ///< SIP messages cut from the streams
  std::uint64_t gaps = 0;           ///< holes skipped (bytes never captured)
  std::uint64_t oversized = 0;      ///< messages (or garbage) longer than kMaxBuffered, dropped
  std::uint64_t skipped_bytes = 0;  ///< bytes dropped while looking for a message start
  std::uint64_t flows_dropped = 0;  ///< directions forgotten for a new one (kMaxFlows)
};

class SipTcpStreams {
 public:
  static constexpr std::size_t kMaxFlows = 256;
  static constexpr std::size_t kMaxBuffered = 65536;
  static constexpr std::size_t kMaxHeld = 16;

  /// A complete SIP message of one direction of a connection.
  struct Message {
    sockaddr_storage source{};       ///< sender's address and TCP port
    sockaddr_storage destination{};  ///< receiver's address and TCP port
    std::vector<std::uint8_t> bytes;
  };

  /// Takes one TCP segment from `source` to `destination` (addresses with ports): its sequence
  /// number, flags (SYN, FIN, RST) and payload. Complete messages are appended to `out`, in
  /// stream order.
  void on_segment(const sockaddr_storage& source, const sockaddr_storage& destination,
                  std::uint32_t seq, bool syn, bool fin, bool rst,
                  std::span<const std::uint8_t> payload, std::deque<Message>& out);

  [[nodiscard]] const SipTcpStats& stats() const noexcept { return stats_; }
  [[nodiscard]] std::size_t flows() const noexcept { return flows_.size(); }

 private:
  struct Flow {
    sockaddr_storage source{}, destination{};
    std::uint32_t next_seq = 0;  ///< sequence number of the next byte expected
    bool synced = false;         ///< the buffer starts at a message boundary
    std::vector<std::uint8_t> buffer;
    std::map<std::uint32_t, std::vector<std::uint8_t>> held;  ///< beyond a hole, by offset
    std::list<std::string>::iterator lru;
  };
  void append(Flow& f, std::span<const std::uint8_t> bytes);
  void extract(Flow& f, std::deque<Message>& out);
  void fill_from_held(Flow& f);
  void forget(const std::string& key);

  std::map<std::string, Flow> flows_;
  std::list<std::string> lru_;  ///< most recently used first
  SipTcpStats stats_;
};

}  // namespace rtpnode
