// The packet-input seam's test double (issue #13): UdpListener is the real packet input; this one
// delivers scripted datagrams to the same DatagramSink (the node's Demux), as if they had arrived
// from `from` on listen `listen` (its RTP port, or its RTCP port = RTP port + 1) at `arrival`.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "node/udp_listener.hpp"

namespace rtpnode::test {

class FakePacketInput {
 public:
  /// As UdpListener::start: datagrams go to `sink` from now on.
  void start(DatagramSink sink) { sink_ = std::move(sink); }
  void rtp(std::size_t listen, const sockaddr_storage& from, std::span<const std::uint8_t> bytes,
           mono_ns_t arrival) {
    deliver(listen, from, bytes, arrival, false);
  }
  void rtcp(std::size_t listen, const sockaddr_storage& from, std::span<const std::uint8_t> bytes,
            mono_ns_t arrival) {
    deliver(listen, from, bytes, arrival, true);
  }

 private:
  void deliver(std::size_t listen, const sockaddr_storage& from,
               std::span<const std::uint8_t> bytes, mono_ns_t arrival, bool rtcp_port) {
    if (!sink_) return;  // not started: dropped, as a socket nobody reads
    sink_(ReceivedDatagram{bytes, reinterpret_cast<const sockaddr*>(&from), listen, rtcp_port,
                           arrival});
  }

  DatagramSink sink_;
};

}  // namespace rtpnode::test
