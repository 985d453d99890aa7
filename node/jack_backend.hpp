// Audio output straight through libjack, for `--host-api jack` (issue #15, device loss).
//
// Why not PortAudio's JACK host API: once its server is gone, PortAudio 19.6 (and its master as
// of 2026) cannot stop or close the stream: RealStop() in src/hostapi/jack/pa_jack.c waits on a
// condition that only the (dead) process thread signals, for 10 minutes, and Pa_CloseStream and
// Pa_Terminate go through it. A node that must survive a JACK restart has to drop its client and
// open a new one; with libjack that is jack_client_close() + jack_client_open(). PortAudio's
// stream time is also (jack_frame_time - t0) / rate in 32-bit frames, which wraps after 24.8 h
// at 48 kHz; this backend's time base is jack_get_time() (CLOCK_MONOTONIC, microseconds).
//
// Behaviour kept from PortAudio's JACK host API, so that scripts and tests see the same graph:
// the client is named --client-name (JACK appends "-01" when taken), its ports are out_0 ..
// out_{N-1}, and they are connected in order to the physical playback ports, or with --device
// NAME to the input ports of the JACK client NAME (e.g. "system").
//
// Thread: construct, open, start, shut down and destroy on the loop thread (start() connects the
// ports on a thread of its own). The process callback runs on JACK's real-time thread; the shutdown
// and xrun callbacks on JACK's notification thread (they only store atomics).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "node/audio_backend.hpp"

typedef struct _jack_client jack_client_t;
typedef struct _jack_port jack_port_t;

namespace rtpnode {

class JackBackend final : public AudioBackend {
 public:
  /// Connects to the JACK server (JACK_DEFAULT_SERVER or "default"; never starts one). Throws
  /// DeviceError when no server runs, or when --rate asks for another rate than the server's.
  explicit JackBackend(const NodeConfig& cfg);
  ~JackBackend() override;
  JackBackend(const JackBackend&) = delete;
  JackBackend& operator=(const JackBackend&) = delete;

  /// Registers out_0..out_{N-1} and the callbacks. Throws DeviceError.
  void open(Mixer& mixer) override;
  /// Before start(): `fn(arg)` runs first on the real-time thread libjack creates for this
  /// client (jack_set_thread_init_callback), before any cycle: to pin or name the thread, or,
  /// in the real-time safety test, to mark it so that its allocations and locks are counted.
  /// Only there: jack2 also runs a thread-init callback on its message-buffer thread (when the
  /// server is real time), which takes a mutex for every message it prints; `fn` is skipped on
  /// any thread other than jack_client_thread_id().
  void set_thread_init(void (*fn)(void*), void* arg) noexcept;
  /// Activates the client and connects its ports (see the file comment) on a thread of their
  /// own, so that the loop is blocked only for the activation (10-20 ms measured, against 60-86
  /// ms with the connections). Throws DeviceError when activation fails; a port that cannot be
  /// connected is a warning on stderr, not an error.
  void start() override;
  /// Deactivates and closes the client, waiting at most `bound` (a stopped server can block
  /// jack_client_close); true when it finished in time, false: the client is abandoned to a
  /// detached thread and the process should exit. Idempotent.
  bool shutdown(std::chrono::milliseconds bound, bool device_gone) noexcept override;
  /// False once JACK shut the client down (server gone, client zombified). Any thread.
  [[nodiscard]] bool stream_active() const noexcept override;
  [[nodiscard]] double sample_rate() const noexcept override { return rate_; }
  [[nodiscard]] int channels() const noexcept override { return channels_; }
  /// The server's period (JACK fixes it; --period does not change it).
  [[nodiscard]] int period() const noexcept override { return period_; }
  /// jack_get_time() in seconds: the time base of BlockTiming here. Loop thread.
  [[nodiscard]] double stream_time() const noexcept override;
  /// The playback latency of the connected ports (frames / rate), s.
  [[nodiscard]] double output_latency() const noexcept override;
  /// jack_cpu_load() / 100: the whole graph's DSP load, as JACK measures it (0..1).
  [[nodiscard]] double cpu_load() const noexcept override;
  [[nodiscard]] const CallbackTimes& callback_times() const noexcept override {
    return shared_->times;
  }
  /// "JACK (libjack): rtpnode -> system (48000 Hz, 2 ch)".
  [[nodiscard]] std::string describe() const override;

  /// Largest block handled (frames); a larger JACK period plays silence and counts as an xrun.
  static constexpr std::uint32_t kMaxBlockFrames = 8192;
  /// A cycle start (jack_get_cycle_times) further than this before the callback runs is not
  /// taken (the DLL lags after a server stall): the wake-up time stands in for it, µs.
  static constexpr std::uint64_t kMaxCycleLagUs = 1000;

 private:
  /// What JACK's threads use. Shared with the thread that closes the client, so that it outlives
  /// a close that does not return in time (the backend is then destroyed, this is not).
  struct Shared {
    jack_client_t* client = nullptr;
    std::vector<jack_port_t*> ports;
    std::vector<jack_port_t*> targets;  ///< the ports `ports` connect to (another client's)
    std::vector<float> interleaved;  ///< kMaxBlockFrames x channels, written by the callback only
    Mixer* mixer = nullptr;
    double rate = 0;
    std::atomic<bool> lost{false};                 ///< set by JACK's shutdown callback
    std::atomic<std::uint32_t> xruns{0};           ///< JACK's xrun notifications not yet reported
    std::atomic<std::uint32_t> latency_frames{0};  ///< playback latency of the connected ports
    CallbackTimes times;
    void (*thread_init)(void*) = nullptr;  ///< set_thread_init's fn and arg
    void* thread_init_arg = nullptr;
    std::shared_future<void> connected;  ///< connect_ports() done; waited for before closing
  };
  /// jack_set_thread_init_callback's target: runs thread_init on the process thread only.
  static void on_thread_init(void* shared) noexcept;
  /// JACK real-time thread; wait-free apart from Mixer::process's bounded work.
  static int process(std::uint32_t frames, void* shared) noexcept;
  /// JACK's notification thread, the loop thread before activation, or connect_ports()'s.
  static void refresh_latency(Shared& s) noexcept;
  /// Connects out_i to targets[i] and recomputes the latencies (each waits for the server).
  /// Thread: the one start() launches (the loop's when none can be made); warnings on stderr.
  static void connect_ports(Shared& s, const std::vector<std::string>& targets) noexcept;

  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
  std::string client_name_;
  std::string target_;  ///< --device: the JACK client to connect to ("" = physical ports)
  double rate_ = 0;
  int channels_ = 2;
  int period_ = 0;
  bool active_ = false;
  bool shut_down_ = false;
  std::vector<std::string> targets_;  ///< the ports out_i is connected to, in order
};

}  // namespace rtpnode
