// The second packet input (issue #14, after UdpListener): the UDP datagrams of a capture file
// (capture_file.hpp) handed to the demux at their capture times, as if a socket bound to each
// --listen port had received them. The capture's first datagram arrives when start() is called;
// each later one (capture time t) arrives at start + (t - t0) on the node's monotonic clock,
// and that is the arrival time the jitter buffers see -- the capture's inter-arrival times,
// jitter included, not the replay's scheduling. A capture whose times step backwards (files
// merged out of order) is replayed without going back: such a datagram arrives at once.
//
// Which datagrams play: those whose destination port is a --listen port (RTP) or that port + 1
// (its RTCP), and whose destination address is the --listen address unless that is a wildcard
// (0.0.0.0, ::). The rest are counted (not_listened) and skipped. Nothing is ever sent: a tap
// is passive.
//
// With discovery (rtpnode --pcap without --listen), call discovery (call_discovery.hpp) looks at
// every datagram first: SIP messages are consumed, and each media endpoint it finds (from SDP,
// or a flow the RTP heuristic confirmed) becomes a listen of its own -- that address and port,
// the call's payload map, and the call side's channel (caller left, callee right) when the
// device has two or more. The packets the heuristic held while deciding play first.
//
// Thread: the loop thread of `loop`, for everything.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <unordered_map>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "node/call_discovery.hpp"
#include "node/capture_file.hpp"
#include "node/config.hpp"
#include "node/udp_listener.hpp"

namespace rtpnode {

/// What a replay did (loop thread).
struct CaptureReplayStats {
  std::uint64_t delivered = 0;     ///< datagrams handed to the sink
  std::uint64_t not_listened = 0;  ///< UDP datagrams to no --listen port (or its RTCP port)
  /// Datagrams the RTP heuristic held while deciding (those of confirmed flows are delivered
  /// too, and counted there).
  std::uint64_t heuristic_held = 0;
  std::uint64_t time_steps_back = 0;  ///< datagrams captured before the one they follow
  std::uint64_t sip = 0;              ///< SIP messages (discovery)
  bool ended = false;                 ///< the whole file was replayed (or it ended early)
};

class CaptureReplay {
 public:
  /// A media endpoint discovery added as listen `listen` (its index in `listens`).
  using EndpointAdded = std::function<void(const MediaEndpoint& e, std::size_t listen)>;
  /// Opens `path` (CaptureFileReader: throws std::runtime_error with the reason). The timer
  /// belongs to `loop`: the owner closes every handle of the loop before destroying this.
  /// `discover`: run call discovery, appending to `listens` (see the file comment) and calling
  /// `added`; `channels`: the device's, for the sides' routes.
  CaptureReplay(uv_loop_t* loop, const std::string& path, std::vector<ListenSpec>& listens,
                bool discover = false, int channels = 2, EndpointAdded added = nullptr);
  /// --capture IFACE [--capture-filter BPF]: a live tap of an interface instead of a file.
  struct LiveSource {
    std::string iface, filter;
  };
  /// Taps `live` (LiveCapture: throws std::runtime_error with the reason, e.g. CAP_NET_RAW).
  /// Datagrams are handled as they are captured, their kernel capture time mapped onto the
  /// monotonic clock as the arrival; there is no end.
  CaptureReplay(uv_loop_t* loop, const LiveSource& live, std::vector<ListenSpec>& listens,
                bool discover, int channels, EndpointAdded added);
  CaptureReplay(const CaptureReplay&) = delete;
  CaptureReplay& operator=(const CaptureReplay&) = delete;

  /// Starts the replay now: datagrams go to `sink` at their times; `on_end` runs once after the
  /// last one (or when the file ends early: error() says why). Idempotent.
  void start(DatagramSink sink, std::function<void()> on_end);
  [[nodiscard]] bool started() const noexcept { return started_; }
  /// Offline rendering (a file, not --capture): call before start(). The replay then never arms
  /// its timer; the caller sets the loop clock (loop_clock.hpp) to next_due() and calls
  /// advance(), which hands on every datagram due by then.
  void set_driven() noexcept { driven_ = true; }
  /// The arrival time (loop clock, ns) of the next datagram; none before start() and after the
  /// end.
  [[nodiscard]] std::optional<mono_ns_t> next_due() const noexcept;
  /// Hands on every datagram due at the loop clock's now (and calls on_end at the file's end).
  void advance();
  [[nodiscard]] const CaptureReplayStats& stats() const noexcept { return stats_; }
  [[nodiscard]] const CaptureStats& capture_stats() const noexcept {
    return live_ ? live_->stats() : reader_->stats();
  }
  /// SIP over TCP: segments, messages, holes skipped.
  [[nodiscard]] const SipTcpStats& tcp_stats() const noexcept {
    return live_ ? live_->tcp_stats() : reader_->tcp_stats();
  }
  [[nodiscard]] const std::string& error() const noexcept {
    return live_ ? live_->error() : reader_->error();
  }
  [[nodiscard]] bool live() const noexcept { return live_ != nullptr; }
  /// Live: packets the kernel dropped (its capture buffer full).
  [[nodiscard]] std::uint64_t kernel_drops() const noexcept {
    return live_ ? live_->kernel_drops() : 0;
  }
  /// Call discovery's findings, or null without discovery.
  [[nodiscard]] const CallDiscovery* discovery() const noexcept { return discovery_.get(); }
  /// Capture time of the first datagram and of the last one replayed so far (ns since the
  /// epoch; 0 before the first).
  [[nodiscard]] std::int64_t first_time_ns() const noexcept { return t0_; }
  [[nodiscard]] std::int64_t last_time_ns() const noexcept { return last_t_; }
  /// The capture time (ns since the epoch) of a datagram this replay delivered at `arrival`.
  [[nodiscard]] std::int64_t capture_time_ns(mono_ns_t arrival) const noexcept;

  /// Where `d` goes: the listen index and whether it is that listen's RTCP port, or none.
  /// Any thread; pure.
  [[nodiscard]] static std::optional<std::pair<std::size_t, bool>> route(
      const std::vector<ListenSpec>& listens, const CapturedDatagram& d);

  /// route() for this replay's listens through an index (hash lookups instead of parsing every
  /// listen address per datagram: a capture of 100 calls has 200 listens, and the linear scan
  /// cost more than everything else an offline render does). The listens only grow (discovery
  /// appends); the index catches up with what was appended. Same answer as route(): the first
  /// listen, in order, that takes the datagram.
  /// Thread: loop.
  [[nodiscard]] std::optional<std::pair<std::size_t, bool>> route_indexed(
      const CapturedDatagram& d);

 private:
  struct RouteKey {
    std::uint8_t family = 0;  ///< AF_INET, AF_INET6, or 0 for a wildcard address (any family)
    std::array<std::uint8_t, 16> address{};
    std::uint16_t port = 0;
    bool operator==(const RouteKey&) const = default;
  };
  struct RouteKeyHash {
    std::size_t operator()(const RouteKey& k) const noexcept;
  };
  std::unordered_map<RouteKey, std::pair<std::size_t, bool>, RouteKeyHash> route_index_;
  std::size_t routes_indexed_ = 0;  ///< listens_[0, routes_indexed_) are in route_index_
  /// What both public constructors do, given the file or the live capture.
  CaptureReplay(uv_loop_t* loop, std::unique_ptr<CaptureFileReader> reader,
                std::unique_ptr<LiveCapture> live, std::vector<ListenSpec>& listens, bool discover,
                int channels, EndpointAdded added);
  /// Reads the next datagram into pending_; false at the end.
  bool read_next();
  /// Delivers every datagram due by now and arms the timer for the next one.
  void pump();
  /// Hands `d` to the sink as arrived at `arrival` if a listen takes it; else counts it.
  void deliver(const CapturedDatagram& d, mono_ns_t arrival);
  /// Discovery (when on), then deliver(): one captured datagram that arrived at `arrival`.
  void handle(const CapturedDatagram& d, mono_ns_t arrival);
  /// The node-clock arrival of a datagram captured at `capture_ns`.
  [[nodiscard]] mono_ns_t arrival_of(std::int64_t capture_ns) const noexcept;
  /// Live: reads what the kernel has captured.
  void on_readable();
  void add_endpoint(const MediaEndpoint& e);

  std::unique_ptr<CaptureFileReader> reader_;
  std::unique_ptr<LiveCapture> live_;
  uv_poll_t poll_{};
  std::int64_t live_offset_ns_ = 0;  ///< monotonic - realtime, read at each wake-up
  std::vector<ListenSpec>& listens_;
  std::unique_ptr<CallDiscovery> discovery_;
  int channels_ = 2;
  EndpointAdded added_;
  uv_timer_t timer_{};
  DatagramSink sink_;
  std::function<void()> on_end_;
  bool started_ = false;
  bool driven_ = false;  ///< set_driven(): no timer; advance() at next_due()
  mono_ns_t start_ns_ = 0;
  bool have_t0_ = false;
  std::int64_t t0_ = 0;
  std::int64_t last_t_ = 0;
  // The datagram read but not yet due (its payload copied: the reader's is valid until next()).
  bool have_pending_ = false;
  CapturedDatagram pending_;
  std::vector<std::uint8_t> pending_bytes_;
  CaptureReplayStats stats_;
};

}  // namespace rtpnode
