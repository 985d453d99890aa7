// Audio device access through PortAudio (callback mode, float32 interleaved). The callback only
// calls Mixer::process(): no allocation, lock, system call or logging.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>

#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>

#include "node/config.hpp"
#include "node/mixer.hpp"
#include "node/realtime.hpp"

typedef void PaStream;

namespace rtpnode {

/// A setup error a user can act on (the message says which flag or device to fix).
class DeviceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Durations of the device callback (mixing included), as a fixed-bucket histogram.
/// Written by the audio thread only (wait-free: relaxed loads and stores of its own counters);
/// read by any thread. A reader may see a count a callback ahead of the sum: figures are
/// monitoring data, not an exact snapshot.
struct CallbackTimes {
  /// Upper bounds of the buckets, microseconds (Prometheus `le`); the last bucket is +Inf.
  static constexpr std::array<double, 10> kBoundsUs{25, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000};
  std::array<std::atomic<std::uint64_t>, kBoundsUs.size() + 1> buckets{};  ///< not cumulative
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> sum_ns{0};
  std::atomic<std::uint64_t> max_ns{0};
  /// Audio thread; wait-free.
  void record(std::uint64_t ns) noexcept;
};

/// The device callback's work: mixes one block into `out` and records how long that took.
/// Audio thread; wait-free apart from Mixer::process's bounded work. The clock is read with
/// clock_gettime(CLOCK_MONOTONIC), which Linux serves from the vDSO without a system call.
RTPNODE_REALTIME void process_block(Mixer& mixer, CallbackTimes& times, float* out, frames_t frames,
                                    const BlockTiming& timing) noexcept;

/// Owns PortAudio's initialisation and one output stream.
/// Thread: construct, open, start, stop and destroy on the loop thread.
class PortAudioBackend {
 public:
  /// Initialises PortAudio (JACK client name set from cfg.client_name) and resolves the host API
  /// and device from cfg. Throws DeviceError when none matches.
  explicit PortAudioBackend(const NodeConfig& cfg);
  ~PortAudioBackend();
  PortAudioBackend(const PortAudioBackend&) = delete;
  PortAudioBackend& operator=(const PortAudioBackend&) = delete;

  /// Prints every output-capable device: index, host API, name, channels, default rate.
  static void list_devices(std::ostream& os);

  /// Opens the output stream feeding `mixer` (which must outlive the stream). Throws DeviceError.
  void open(Mixer& mixer);
  void start();
  /// Stops the stream (Pa_StopStream, or Pa_AbortStream when `device_gone`), closes it and
  /// terminates PortAudio, waiting at most `bound`: PortAudio's JACK host API blocks for minutes
  /// once its server is gone (issue #16 finding 3). True when all of it finished in time (the
  /// callback no longer runs); false when it did not: the work goes on in a detached thread, the
  /// backend is abandoned (its destructor leaves PortAudio alone) and the process should exit.
  /// Idempotent; the destructor calls it with a 2 s bound if it was not called.
  bool shutdown(std::chrono::milliseconds bound, bool device_gone) noexcept;
  /// True while PortAudio reports the stream active (Pa_IsStreamActive == 1): false once the
  /// host API stopped it (JACK server gone, device error). Loop thread.
  [[nodiscard]] bool stream_active() const noexcept;

  [[nodiscard]] double sample_rate() const noexcept { return rate_; }
  [[nodiscard]] int channels() const noexcept { return channels_; }
  /// Frames per callback requested (0 = host API's choice).
  [[nodiscard]] int period() const noexcept { return period_; }
  /// PortAudio stream time now (s), the time base of the callback's timing. Loop thread.
  [[nodiscard]] double stream_time() const noexcept;
  /// Output latency reported by Pa_GetStreamInfo (s).
  [[nodiscard]] double output_latency() const noexcept;
  /// Pa_GetStreamCpuLoad: fraction of the callback's time budget used, smoothed by PortAudio
  /// (0..1, > 1 when overloaded); 0 when the host API does not measure it. Loop thread.
  [[nodiscard]] double cpu_load() const noexcept;
  /// Callback durations. Any thread.
  [[nodiscard]] const CallbackTimes& callback_times() const noexcept { return times_; }
  /// "JACK Audio Connection Kit: system (48000 Hz, 2 ch)".
  [[nodiscard]] std::string describe() const;

 private:
  int device_ = -1;
  double rate_ = 0;
  int channels_ = 2;
  int period_ = 0;
  std::string device_name_;
  std::string host_api_name_;
  PaStream* stream_ = nullptr;
  bool started_ = false;
  bool shut_down_ = false;  ///< shutdown() ran (PortAudio terminated or abandoned)
  std::pair<Mixer*, CallbackTimes*> context_{};  ///< the callback's user data
  CallbackTimes times_;
};

}  // namespace rtpnode
