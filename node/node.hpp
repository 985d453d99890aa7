// The running node: one libuv loop thread owns the sockets, the sources (jitter buffers,
// decoders, resamplers), the timers and the statistics; the PortAudio callback only mixes.
#pragma once

#include <array>
#include <deque>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <uv.h>
#include <netinet/in.h>
#include <nlohmann/json_fwd.hpp>

#include "node/audio_backend.hpp"
#include "node/config.hpp"
#include "node/device_clock.hpp"
#include "node/device_monitor.hpp"
#include "node/event_watcher.hpp"
#include "node/http_server.hpp"
#include "node/mixer.hpp"
#include "node/source.hpp"
#include "node/rtcp_session.hpp"
#include "node/source_table.hpp"
#include "node/stats_model.hpp"
#include "node/udp_listener.hpp"
#include "rtp/rtp_header.hpp"

namespace rtpnode {

/// Node-wide counters (loop thread).
struct NodeStats {
  std::uint64_t datagrams = 0;  ///< UDP datagrams received on every listen socket
  std::array<std::uint64_t, kRtpParseStatusCount> rejected{};  ///< by RtpParseStatus (index)
  std::uint64_t unknown_payload_type = 0;   ///< valid RTP with a PT no --payload maps, dropped
  std::uint64_t rtcp_packets = 0;           ///< valid RTCP compounds (RTCP port or muxed on RTP)
  std::uint64_t rtcp_malformed = 0;         ///< RTCP datagrams failing RFC 3550 A.2 checks
  std::uint64_t sender_reports = 0;         ///< SR packets received
  std::uint64_t byes = 0;                   ///< BYE SSRCs received
  std::uint64_t receiver_reports_sent = 0;  ///< RTCP RR compounds sent
  std::uint64_t rtcp_foreign = 0;  ///< SR/BYE about a source from another host than its RTP
  std::uint64_t not_allowed = 0;   ///< datagrams from outside every --allow block
};

class Node {
 public:
  /// Thread: main. Throws DeviceError / std::runtime_error with an actionable message on setup
  /// failure (device, socket bind, multicast join).
  explicit Node(NodeConfig cfg);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// Exit code of run() when the audio device was lost (stopped or stalled) at the end, or did
  /// not stop within 2 s.
  static constexpr int kExitDeviceLost = 3;
  /// What the node knows of its audio device (device_monitor.hpp).
  using DeviceState = DeviceMonitor::State;
  static constexpr mono_ns_t kDeviceStallNs = DeviceMonitor::kStallNs;

  /// Runs until --duration elapses or SIGINT/SIGTERM. Returns the process exit code: 0, or
  /// kExitDeviceLost. Stopping never waits more than 2 s for the device.
  int run();
  /// True when run() could not stop the device in time (the process should _Exit).
  [[nodiscard]] bool device_abandoned() const noexcept { return device_abandoned_; }

 private:
  /// Thread: loop. `now`: the datagram's arrival (kernel receive timestamp, monotonic scale).
  void on_datagram(const ListenSpec& spec, std::span<const std::uint8_t> data, const sockaddr* from,
                   mono_ns_t now);
  void on_rtcp(const ListenSpec& spec, std::span<const std::uint8_t> data, const sockaddr* from,
               mono_ns_t now);
  /// The NTP timeline is on while at least two sources have SRs (one alone follows its own
  /// target delay); it is defined from where a source with SR already plays.
  void update_timeline();
  /// The factory of SourceTable: a source with this node's playout settings, mixer, clock and
  /// timeline, and the SR already held for it. Throws when its codec cannot be created.
  std::unique_ptr<Source> make_source(const SourceTable::NewSource& n);
  void tick();
  /// Drains the mixer's retire ring and lets the source table end and free sources.
  void expire_sources(mono_ns_t now);
  void report(bool final);
  void write_json();
  /// True when --allow admits `from` (or there is no --allow); else counts and warns once.
  bool allowed(const sockaddr* from);
  /// Loop thread, every tick: follows the callback count; no progress for kDeviceStallNs makes
  /// the device stalled or stopped (stderr line, device_lost event), progress running again.
  void check_device(mono_ns_t now);
  /// The figures of the node and of every source now (stats_model.hpp).
  [[nodiscard]] NodeSnapshot snapshot() const;
  [[nodiscard]] std::vector<SourceReport> source_reports(bool with_departed) const;
  /// GET /metrics, /stats, /sources; POST /sources/SEL/ACTION (control_api.hpp).
  HttpResponse on_http(const HttpRequest& req);
  void event(const char* name, const nlohmann::json& fields);
  /// RTCP RR to the senders of every session, then re-arms the RFC 3550 §6.3 timer.
  void send_receiver_reports();
  void schedule_receiver_reports();
  /// Prints make_text() once per kind; later calls of that kind cost a flag test.
  template <typename MakeText>
  void warn_once(std::size_t kind, MakeText&& make_text);
  void stop();
  /// Closes every handle and the loop (destructor and failed construction).
  void close_loop();

  NodeConfig cfg_;
  std::unique_ptr<AudioBackend> backend_;
  std::unique_ptr<Mixer> mixer_;
  // Device health (loop thread): see check_device().
  DeviceMonitor device_;
  bool device_abandoned_ = false;  ///< shutdown timed out: the mixer must outlive us
  DeviceClock clock_;
  frames_t lead_frames_ = 0;

  uv_loop_t loop_{};
  uv_timer_t render_timer_{};
  uv_timer_t stats_timer_{};
  uv_timer_t stop_timer_{};
  uv_signal_t sigint_{};
  uv_signal_t sigterm_{};
  std::unique_ptr<UdpListener> udp_;
  bool receiving_ = false;

  std::uint32_t next_id_ = 1;
  NodeStats stats_;
  SyncTimeline timeline_;
  frames_t ramp_frames_ = 0;
  bool stats_json_failing_ = false;  ///< the last --stats-json write failed (said once)
  std::vector<bool> warned_;
  mono_ns_t started_ns_ = 0;

  std::unique_ptr<HttpServer> http_;
  EventWatcher events_;
  std::unique_ptr<SourceTable> sources_;  ///< after events_: it reports to them
  mono_ns_t last_watch_ = 0;
  mono_ns_t last_tick_ = 0;     ///< when tick() last ran
  mono_ns_t max_tick_gap_ = 0;  ///< the longest time between two ticks since the last check
  // RTCP reporting (RFC 3550 §6.2-6.4).
  uv_timer_t rr_timer_{};
  std::unique_ptr<RtcpSession> rtcp_;
};

}  // namespace rtpnode
