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

#include "node/audio_backend.hpp"
#include "node/config.hpp"
#include "node/device_clock.hpp"
#include "node/mixer.hpp"
#include "node/source.hpp"
#include "rtp/rtp_header.hpp"

namespace rtpnode {

/// Node-wide counters (loop thread).
struct NodeStats {
  std::uint64_t datagrams = 0;          ///< UDP datagrams received on every listen socket
  std::array<std::uint64_t, kRtpParseStatusCount> rejected{};  ///< by RtpParseStatus (index)
  std::uint64_t unknown_payload_type = 0;  ///< valid RTP with a PT no --payload maps, dropped
  std::uint64_t sources_refused = 0;    ///< new streams refused: --max-sources reached or codec error
  std::uint64_t callbacks = 0;          ///< device callbacks so far
  std::uint64_t xruns = 0;              ///< device under/overflows reported to the callback
};

class Node {
 public:
  /// Thread: main. Throws DeviceError / std::runtime_error with an actionable message on setup
  /// failure (device, socket bind, multicast join).
  explicit Node(NodeConfig cfg);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// Runs until --duration elapses or SIGINT/SIGTERM. Returns the process exit code.
  int run();

 private:
  struct Listener {
    Node* node = nullptr;
    ListenSpec spec;
    uv_udp_t handle{};
    std::array<char, 65536> buf{};
  };

  void bind_all();
  void on_datagram(Listener& l, std::span<const std::uint8_t> data, const sockaddr* from);
  Source* find_or_create(std::uint64_t key, Listener& l, const sockaddr* from, std::uint32_t ssrc,
                         std::uint8_t pt, const PayloadFormat& fmt, bool raw, mono_ns_t now);
  void tick();
  /// Detaches sources silent for longer than --source-timeout; frees those the mixer returned.
  void expire_sources(mono_ns_t now);
  void report(bool final);
  void write_json() const;
  /// Prints make_text() once per kind; later calls of that kind cost a flag test.
  template <typename MakeText>
  void warn_once(std::size_t kind, MakeText&& make_text);
  void stop();
  /// Closes every handle and the loop (destructor and failed construction).
  void close_loop();

  NodeConfig cfg_;
  std::unique_ptr<PortAudioBackend> backend_;
  std::unique_ptr<Mixer> mixer_;
  DeviceClock clock_;
  frames_t lead_frames_ = 0;

  uv_loop_t loop_{};
  uv_timer_t render_timer_{};
  uv_timer_t stats_timer_{};
  uv_timer_t stop_timer_{};
  uv_signal_t sigint_{};
  uv_signal_t sigterm_{};
  std::vector<std::unique_ptr<Listener>> listeners_;
  bool receiving_ = false;

  std::unordered_map<std::uint64_t, std::unique_ptr<Source>> sources_;
  std::vector<Source*> source_order_;
  /// Sources detached from the mixer, freed once it hands their stream back (lifecycle rule 2).
  std::vector<std::unique_ptr<Source>> retiring_;
  /// Final statistics of the last kMaxDeparted sources that timed out.
  std::deque<SourceStats> departed_;
  static constexpr std::size_t kMaxDeparted = 64;
  mono_ns_t last_timeout_check_ = 0;
  std::uint32_t next_id_ = 1;
  NodeStats stats_;
  std::vector<bool> warned_;
  mono_ns_t started_ns_ = 0;
};

}  // namespace rtpnode
