// The running node: one libuv loop thread owns the sockets, the sources (jitter buffers,
// decoders, resamplers), the timers and the statistics; the PortAudio callback only mixes.
#pragma once

#include <array>
#include <deque>
#include <map>
#include <span>
#include <functional>
#include <optional>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <uv.h>
#include <netinet/in.h>
#include <nlohmann/json_fwd.hpp>

#include "node/audio_backend.hpp"
#include "node/call_recorder.hpp"
#include "node/capture_replay.hpp"
#include "node/config.hpp"
#include "node/demux.hpp"
#include "node/device_clock.hpp"
#include "node/device_monitor.hpp"
#include "node/event_watcher.hpp"
#include "node/http_server.hpp"
#include "node/loop_clock.hpp"
#include "node/mdns_advertiser.hpp"
#include "node/mixer.hpp"
#include "node/sap_directory.hpp"
#include "node/source.hpp"
#include "node/rtcp_session.hpp"
#include "node/service_notify.hpp"
#include "node/source_factory.hpp"
#include "node/wall_clock.hpp"
#include "node/source_table.hpp"
#include "node/stats_model.hpp"
#include "node/udp_listener.hpp"
#include "rtp/rtp_header.hpp"

namespace rtpnode {

class Node {
 public:
  /// Thread: main. Throws DeviceError / std::runtime_error with an actionable message on setup
  /// failure (device, socket bind, multicast join).
  explicit Node(NodeConfig cfg);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// Exit code of run() when the audio device was lost and --device-retry is off, or when a
  /// device could not be released within 2 s.
  static constexpr int kExitDeviceLost = 3;
  /// What the node knows of its audio device (device_monitor.hpp).
  using DeviceState = DeviceMonitor::State;
  static constexpr mono_ns_t kDeviceStallNs = DeviceMonitor::kStallNs;

  /// Runs until --duration elapses or SIGINT/SIGTERM. Returns the process exit code: 0, or
  /// kExitDeviceLost. Stopping never waits more than 2 s for the device.
  int run();
  /// A configuration re-read on SIGHUP (main.cpp: the command line and --config again): the
  /// checked configuration, or none (the reloader's `error` says why), and the keys (flag names)
  /// whose effective value changed.
  struct Reload {
    std::optional<NodeConfig> config;
    std::vector<std::string> changed;
  };
  using Reloader = std::function<Reload(std::string& error)>;
  /// Thread: main, before run(). With a reloader, SIGHUP re-reads the configuration and applies
  /// what can change live -- --gain, --offset, --route (every source, ramped by the mixer) and
  /// --min-latency/--max-latency -- and says on stderr (and in the event log) what needs a
  /// restart.
  void set_reloader(Reloader r) { reloader_ = std::move(r); }
  /// The loop's tick with no source: device health (a stopped device is seen within a second),
  /// clock readings and the watchdog (at most a third of its interval) only.
  static constexpr std::uint64_t kIdleTickMs = 500;
  /// The longest the loop sleeps while sources play (housekeeping: device health, events).
  static constexpr std::uint64_t kMaxRenderSleepMs = 100;
  /// Keys a SIGHUP applies live.
  static constexpr std::array<const char*, 5> kLiveKeys{"gain", "offset", "route", "min-latency",
                                                        "max-latency"};

  /// True when run() could not stop the device in time (the process should _Exit).
  [[nodiscard]] bool device_abandoned() const noexcept { return device_abandoned_; }

 private:
  /// The factory of SourceTable (SourceFactory with the render lead known now). Throws when its
  /// codec cannot be created.
  std::unique_ptr<Source> make_source(const SourceTable::NewSource& n);
  /// Writes the source's one-time format warnings to stderr (Source::take_format_warning).
  /// Thread: loop.
  void warn_format(Source& s) const;
  /// Drains the mixer's retire ring and lets the source table end and free sources.
  void expire_sources(mono_ns_t now);
  void report(bool final);
  /// --report: the per-call quality report (node_reports.cpp), written atomically at exit.
  void write_report();
  void write_json();
  /// Loop thread, every tick: follows the callback count; no progress for kDeviceStallNs makes
  /// the device stalled or stopped (stderr line, device_lost event), progress running again.
  void check_device(mono_ns_t now);
  /// Loop thread: releases the lost backend (at most 2 s; else the process exits) and opens,
  /// with the same configuration, a new one feeding the same mixer. The mixer's frame counter
  /// goes on; the clock sees the outage as a device jump, which re-places the sources
  /// (DeviceClock, SourceTable::on_device_jump). Events device_reopened / a stderr line per new
  /// error.
  void reopen_device(mono_ns_t now);
  /// --idle-suspend: releases the device after that long without a source (event
  /// device_suspended); resume_device() opens it again at a new source's first packet, with
  /// the mixer's frame counter moved to where the clock says the device would be.
  void suspend_device(mono_ns_t now);
  /// Opens and starts a backend as configured, on the same mixer, in place of the released one
  /// (throws DeviceError, or what the backend throws, when it cannot, or when it comes back at
  /// another rate or channel count). `continue_clock`: the mixer's frame counter first moves to
  /// where the clock says the device is now (a resumption; a reopening lets the clock see the
  /// outage as a jump instead).
  void start_new_backend(bool continue_clock);
  void resume_device(mono_ns_t now);
  /// The figures of the node and of every source now (stats_model.hpp).
  [[nodiscard]] NodeSnapshot snapshot() const;
  [[nodiscard]] std::vector<SourceReport> source_reports(bool with_departed) const;
  /// GET /metrics, /stats, /sources; POST /sources/SEL/ACTION (control_api.hpp).
  HttpResponse on_http(const HttpRequest& req);
  void event(const char* name, const nlohmann::json& fields);
  /// RTCP RR to the senders of every session, then re-arms the RFC 3550 §6.3 timer.
  void send_receiver_reports();
  void schedule_receiver_reports();
  void stop();
  /// SIGINT and SIGTERM stop the node (stop()).
  void install_signals();
  /// After the loop: stops the device, writes the final stats, closes recordings, writes
  /// --report. Returns run()'s exit code.
  int finish();
  /// run() for an offline render (NodeConfig::offline: --pcap into --output): no timers and no
  /// real-time pacing. The loop clock (loop_clock.hpp) is virtual: each datagram arrives at its
  /// capture time, then, block by block, the loop's tick renders the sources ahead and the file
  /// backend mixes and writes the block on this thread. Stops when the capture has played out,
  /// at --duration of rendered time, on SIGINT/SIGTERM, or when the file cannot be written.
  int run_offline();
  bool offline_ = false;           ///< run_offline() is running
  bool stop_requested_ = false;    ///< stop() was called
  mono_ns_t offline_stop_at_ = 0;  ///< offline: the capture ended; stop at this loop time
  /// The render timer: every render_every_ms_ while sources play (or the device is not yet
  /// running), every kIdleTickMs with none (issue #15: an idle node sleeps; a datagram that
  /// makes a source switches back at once).
  void set_render_cadence(bool idle);
  /// One pass of the loop's work (device, clock, sources, expiry, events), then, while sources
  /// play, schedule_render.
  void tick();
  void render_tick();
  /// Arms the one-shot render timer for the earliest time a source must render again.
  void schedule_render(mono_ns_t now);
  /// After a poll that read datagrams: renders the sources that got one (uv_check handle).
  void render_arrivals();
  /// SIGHUP: re-reads the configuration through reloader_ and applies the live keys.
  void reload();
  /// Closes every handle and the loop (destructor and failed construction).
  void close_loop();

  NodeConfig cfg_;
  std::unique_ptr<AudioBackend> backend_;
  std::unique_ptr<Mixer> mixer_;
  // Device health (loop thread): see check_device().
  DeviceMonitor device_;
  bool device_abandoned_ = false;  ///< shutdown timed out: the mixer must outlive us
  bool backend_released_ = false;  ///< the lost backend was shut down; no new one runs yet
  std::uint64_t device_reopens_ = 0;
  std::uint64_t device_reopen_failures_ = 0;
  std::string reopen_error_;  ///< the last reopening's error, said once until it changes
  bool suspended_ = false;    ///< --idle-suspend released the device (no source)
  mono_ns_t idle_since_ = 0;  ///< when the last source ended (0: sources play)
  mono_ns_t suspended_at_ = 0;
  std::uint64_t suspensions_ = 0;
  /// The callback count when the device was last reopened: the clock takes readings again only
  /// once the new stream has published a block.
  std::uint64_t reopen_callbacks_ = 0;
  /// --sync absolute: maps the timeline from the wall clock (SourceTable::follow_wall_clock)
  /// and reports a step of it. Thread: loop.
  void follow_wall_clock(mono_ns_t now);
  /// Every 100 ms: reads the wall clock's offset and sync state (WallClock::poll); with --sync
  /// absolute, logs and writes events for steps and sync state changes. Thread: loop.
  void poll_wall_clock();
  std::uint64_t wall_polls_ = 0;
  /// Reads the device position against the monotonic clock into clock_ (DeviceClock::update)
  /// and hands a device jump to the sources. Thread: loop.
  void read_device_clock(const DevicePosition& pos, mono_ns_t now);
  mono_ns_t last_clock_read_ = 0;
  mono_ns_t last_tick_ = 0;  ///< when render_tick last ran
  /// Records the loop's lateness past its render deadline (loop_lateness_*, the events' loop
  /// stall). Thread: loop.
  void note_lateness(mono_ns_t late);
  static constexpr mono_ns_t kClockReadEveryNs = 5'000'000;
  DeviceClock clock_;
  WallClock wall_;  ///< --sync absolute's timeline; its state is reported in every mode
  frames_t lead_frames_ = 0;
  std::uint64_t device_jumps_seen_ = 0;  ///< DeviceClock::jumps() already handed to the sources

  uv_loop_t loop_{};
  uv_timer_t render_timer_{};
  uv_check_t arrivals_check_{};
  bool datagrams_pending_ = false;     ///< datagrams came since the last render_arrivals()
  std::uint64_t render_every_ms_ = 5;  ///< the render cadence: half a device period, <= 5 ms
  bool idle_ = false;                  ///< no source: the timer runs every kIdleTickMs
  uv_timer_t stats_timer_{};
  uv_timer_t stop_timer_{};
  uv_signal_t sigint_{};
  uv_signal_t sigterm_{};
  uv_signal_t sighup_{};
  Reloader reloader_;
  std::unique_ptr<UdpListener> udp_;  ///< live input (no --pcap)
  // --sap (node_sap.cpp).
  std::unique_ptr<SapReceiver> sap_rx_;
  std::unique_ptr<SapDirectory> sap_dir_;
  /// Per announced session (SapSession::key): the listens (indices in cfg_.listens) it opened.
  std::map<std::string, std::vector<std::size_t>> sap_listens_;
  /// Listens whose sockets are closed (a session deleted or timed out, a failed open): their
  /// indices are reused by the next announced stream, so a session that keeps changing does
  /// not grow cfg_.listens.
  std::unordered_set<std::size_t> closed_listens_;
  std::uint64_t sap_streams_refused_ = 0;  ///< announced streams beyond the caps below
  /// At most this many streams of one announced session are received (issue #17: one 64 kB SDP
  /// holds ~2000 m= lines, each an RTP and an RTCP socket) ...
  static constexpr std::size_t kMaxSapStreamsPerSession = 16;
  /// ... and at most max(16, 4 x --max-sources) announced streams in all.
  [[nodiscard]] std::size_t sap_stream_budget() const noexcept;
  std::unordered_set<std::string> sap_warned_;  ///< one warning per announcer and kind
  std::uint64_t sap_packets_ = 0, sap_invalid_ = 0;
  mono_ns_t next_sap_expiry_ = 0;
  /// Thread: loop. One SAP datagram: checked against --allow, parsed (RFC 2974), applied to the
  /// directory; sessions added, changed and deleted open and close their listens.
  void on_sap(std::span<const std::uint8_t> bytes, const sockaddr* from, mono_ns_t arrival);
  /// Thread: loop, each tick: closes the sessions whose announcements stopped.
  void expire_sap_sessions(mono_ns_t now);
  void open_sap_session(const SapSession& s);
  void close_sap_session(const SapSession& s, const char* why);
  std::unique_ptr<CaptureReplay> replay_;  ///< --pcap input
  uv_timer_t capture_end_timer_{};         ///< stops the node once a capture has played out
  /// --pcap: the capture is replayed; stop once what is buffered has played.
  void on_capture_end();
  /// "replaying FILE" (--pcap) or "tapping IFACE (FILTER)" (--capture).
  [[nodiscard]] std::string input_text() const;
  /// --pcap without --listen: call discovery found where one side of a call is heard (a line on
  /// stderr, event call_stream).
  void on_call_endpoint(const MediaEndpoint& e, std::size_t listen);
  /// An RFC 4733 event (a DTMF digit): a line on stderr, event `dtmf`, and the call's digits.
  void on_telephone_event(const TelephoneEventReceiver::Event& e, std::size_t listen,
                          const sockaddr* from, std::uint32_t ssrc, std::uint32_t clock_rate);
  /// Discovered listens: the call (index in the discovery's calls) and side each belongs to.
  std::unordered_map<std::size_t, std::pair<std::size_t, int>> listen_calls_;
  /// Discovered listens of calls --select leaves out: their sources start muted.
  std::unordered_set<std::size_t> muted_listens_;
  /// Per call (index): the DTMF digits it carried, in order.
  std::unordered_map<std::size_t, std::string> call_digits_;
  /// --record: per call (index), its WAV; created at its first source. Each source of the call
  /// holds it too (its tap), so a recorder whose count is 1 has no source left: it is closed
  /// once its call ended (SIP BYE) or after kRecordingIdle without a source
  /// (close_finished_recordings), and its call is not recorded again.
  std::unordered_map<std::size_t, std::shared_ptr<CallRecorder>> recorders_;
  std::unordered_map<std::size_t, mono_ns_t> recorder_idle_since_;
  std::unordered_set<std::size_t> recordings_closed_;
  static constexpr mono_ns_t kRecordingIdle = 60'000'000'000;
  /// Thread: loop. Closes the recordings of calls that are over (see recorders_).
  void close_finished_recordings(mono_ns_t now);
  /// Thread: loop. Writes out and closes one call's recording, with its stderr line.
  void close_recording(std::size_t call, CallRecorder& rec);
  bool receiving_ = false;

  SourceFactory factory_;
  ServiceNotifier service_;  ///< systemd: READY, STATUS, WATCHDOG while the callback runs
  std::uint64_t receiver_reports_sent_ = 0;  ///< RTCP RR compounds sent
  frames_t ramp_frames_ = 0;
  bool stats_json_failing_ = false;  ///< the last --stats-json write failed (said once)
  mono_ns_t started_ns_ = 0;

  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<MdnsAdvertiser> mdns_;  ///< --http with --mdns on
  /// Advertises the HTTP endpoint over mDNS (--name, else `host`). Thread: loop (constructor).
  void advertise(const std::string& host);
  EventWatcher events_;
  std::unique_ptr<SourceTable> sources_;  ///< after events_: it reports to them
  std::unique_ptr<Demux> demux_;
  mono_ns_t last_watch_ = 0;
  mono_ns_t max_lateness_ = 0;      ///< the latest a tick came after its render was due since the
                                    ///< last check (the loop's lateness)
  mono_ns_t render_due_ = 0;        ///< when the armed render timer is due (0: idle)
  std::uint64_t render_wakes_ = 0;  ///< render timer wakes while sources play
  /// The loop's lateness past its render deadlines (ms), the last kLatenessWindow wakes.
  static constexpr std::size_t kLatenessWindow = 4096;
  std::array<float, kLatenessWindow> lateness_{};
  std::uint64_t lateness_count_ = 0;
  // RTCP reporting (RFC 3550 §6.2-6.4).
  uv_timer_t rr_timer_{};
  std::unique_ptr<RtcpSession> rtcp_;
};

}  // namespace rtpnode
