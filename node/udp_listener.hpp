// Packet input (issue #13's seam): where datagrams come from and when they arrived. The demux
// (Node) sees only ReceivedDatagram; UdpListener is the live implementation over libuv UDP
// sockets, and a capture-file reader (issue #14) is the second.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "node/config.hpp"
#include "rtp/units.hpp"

namespace rtpnode {

/// One datagram as the demux takes it. Valid only during the sink call.
struct ReceivedDatagram {
  std::span<const std::uint8_t> bytes;
  const sockaddr* from = nullptr;  ///< the sender's address
  std::size_t listen = 0;          ///< index of the ListenSpec it arrived on
  bool rtcp_port = false;          ///< arrived on the RTCP port (the listen port + 1)
  mono_ns_t arrival = 0;           ///< kernel receive time, monotonic (uv_hrtime) scale
};
using DatagramSink = std::function<void(const ReceivedDatagram&)>;

/// Binds every --listen at construction (joining multicast groups; RTCP on port + 1, RFC 3550
/// §11, when that port is free -- otherwise a warning, and RTCP is read muxed on the RTP port,
/// RFC 5761) and delivers datagrams to the sink from start() on, with their kernel receive
/// timestamps (receive_time.hpp). Thread: the loop thread of `loop`, for everything.
class UdpListener {
 public:
  /// Throws std::runtime_error naming the --listen and the fix when a socket cannot be bound or
  /// a group joined. The handles belong to `loop`: the owner closes them by closing every
  /// handle of the loop (uv_walk) before destroying this object.
  UdpListener(uv_loop_t* loop, const std::vector<ListenSpec>& specs);
  UdpListener(const UdpListener&) = delete;
  UdpListener& operator=(const UdpListener&) = delete;

  /// Starts receiving on every socket into `sink`. Idempotent (the first sink stays).
  void start(DatagramSink sink);
  /// Opens listen `listen` (an index into the node's listens, new, e.g. from a SAP
  /// announcement) and, once started, receives on it. Throws std::runtime_error as the
  /// constructor does, leaving nothing of it open.
  void add(const ListenSpec& spec, std::size_t listen);
  /// Closes listen `listen`'s sockets (a deleted SAP session): no datagram of it is delivered
  /// after this call; the handles are freed by their close callbacks. Idempotent.
  void remove(std::size_t listen);
  [[nodiscard]] bool started() const noexcept { return started_; }
  /// Sends `bytes` to `dest` from listen `listen`'s RTCP socket (its RTP socket when it has no
  /// RTCP socket), without blocking. False when the kernel did not take it.
  bool send_rtcp(std::size_t listen, std::span<const std::uint8_t> bytes, const sockaddr* dest);

 private:
  struct Socket {
    UdpListener* owner = nullptr;
    std::size_t listen = 0;
    bool rtcp_port = false;
    bool receiving = false;
    bool closing = false;
    uv_udp_t handle{};
    std::array<char, 65536> buf{};
  };
  void deliver(Socket& s, std::span<const std::uint8_t> bytes, const sockaddr* from);
  /// Binds listen `i`'s RTP socket (and RTCP's); throws std::runtime_error.
  void open_listen(const ListenSpec& spec, std::size_t i);
  void receive(Socket& s);

  uv_loop_t* loop_;

  std::vector<std::unique_ptr<Socket>> sockets_;
  std::vector<Socket*> rtcp_of_;  ///< per listen: its RTCP socket, else its RTP socket
  DatagramSink sink_;
  bool started_ = false;
};

/// The sockets `--sap` listens on for announcements (RFC 2974). Thread: loop.
class SapReceiver {
 public:
  /// `bytes` is valid during the call only; `arrival` on the uv_hrtime scale.
  using Sink = std::function<void(std::span<const std::uint8_t> bytes, const sockaddr* from,
                                  mono_ns_t arrival)>;
  /// Binds each address and receives into `sink` at once. A multicast group is joined on a
  /// wildcard socket of its port (shared with other programs, SO_REUSEADDR) that gets only its
  /// own groups. A group that cannot be joined (no multicast route) is a warning on stderr;
  /// throws std::runtime_error naming the address when none can be received, or when a unicast
  /// address cannot be bound. The handles belong to `loop` as UdpListener's do.
  SapReceiver(uv_loop_t* loop, const std::vector<ListenSpec>& addresses, Sink sink);
  SapReceiver(const SapReceiver&) = delete;
  SapReceiver& operator=(const SapReceiver&) = delete;

 private:
  struct Socket {
    SapReceiver* owner = nullptr;
    uv_udp_t handle{};
    std::array<char, 65536> buf{};
  };
  std::vector<std::unique_ptr<Socket>> sockets_;
  Sink sink_;
  bool receiving_any_ = false;
};

}  // namespace rtpnode
