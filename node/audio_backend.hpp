// Audio device access through PortAudio (callback mode, float32 interleaved). The callback only
// calls Mixer::process(): no allocation, lock, system call or logging.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
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
  static constexpr std::array<double, 10> kBoundsUs{25,   50,   100,  200,   500,
                                                    1000, 2000, 5000, 10000, 20000};
  std::array<std::atomic<std::uint64_t>, kBoundsUs.size() + 1> buckets{};  ///< not cumulative
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::uint64_t> sum_ns{0};
  std::atomic<std::uint64_t> max_ns{0};
  /// Audio thread; wait-free.
  void record(std::uint64_t ns) noexcept;
};

struct NodeSnapshot;
/// Copies the callback-duration figures into a snapshot (any thread).
void add_callback_times(NodeSnapshot& n, const CallbackTimes& ct);

/// The device callback's work: mixes one block into `out` and records how long that took.
/// Audio thread; wait-free apart from Mixer::process's bounded work. The clock is read with
/// clock_gettime(CLOCK_MONOTONIC), which Linux serves from the vDSO without a system call.
RTPNODE_REALTIME void process_block(Mixer& mixer, CallbackTimes& times, float* out, frames_t frames,
                                    const BlockTiming& timing) noexcept;

/// The audio output seam: where the mix goes and what paces it. Four implementations:
/// PortAudioBackend (a device; its callback paces), JackBackend (jack_backend.hpp: a JACK
/// client; JACK's cycle paces), FileBackend (file_backend.hpp: a WAV/FLAC file paced by a virtual
/// device clock) and ManualBackend (file_backend.hpp: a test pulls blocks). Each calls
/// process_block() for every block, so the mixing code is the same in all. Thread: construct, open,
/// start, shut down and destroy on the loop thread; the queries are for the loop thread unless they
/// say otherwise.
class AudioBackend {
 public:
  virtual ~AudioBackend() = default;
  /// Opens the output feeding `mixer` (which must outlive the output). Throws DeviceError.
  virtual void open(Mixer& mixer) = 0;
  /// Starts pulling blocks. Throws DeviceError.
  virtual void start() = 0;
  /// Stops pulling blocks and releases the output, waiting at most `bound`; `device_gone`: the
  /// output is known lost (abort rather than drain). True when it finished in time (no block is
  /// processed any more); false: the backend is abandoned and the process should exit.
  /// Idempotent.
  virtual bool shutdown(std::chrono::milliseconds bound, bool device_gone) noexcept = 0;
  /// True while blocks keep being pulled (false once the output stopped on its own: device
  /// gone, file write failed).
  [[nodiscard]] virtual bool stream_active() const noexcept = 0;
  /// Frames per second of the output (> 0).
  [[nodiscard]] virtual double sample_rate() const noexcept = 0;
  /// Interleaved channels per frame, 1..64.
  [[nodiscard]] virtual int channels() const noexcept = 0;
  /// Frames per block requested (0 = the host API's choice).
  [[nodiscard]] virtual int period() const noexcept = 0;
  /// The output's time now (s), in the time base of BlockTiming::current_time.
  [[nodiscard]] virtual double stream_time() const noexcept = 0;
  /// Time from a block's processing to its first frame reaching the output (s).
  [[nodiscard]] virtual double output_latency() const noexcept = 0;
  /// Fraction of the block's time budget used (0..1, > 1 overloaded); 0 when unmeasured.
  [[nodiscard]] virtual double cpu_load() const noexcept = 0;
  /// Block durations. Any thread.
  [[nodiscard]] virtual const CallbackTimes& callback_times() const noexcept = 0;
  /// One line for the user: "JACK Audio Connection Kit: system (48000 Hz, 2 ch)".
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// Runs `work` on a detached thread and waits for it at most `bound`: true when it finished in
/// time; false when it did not (it goes on alone; what it uses must outlive it) or no thread
/// could be started. For releasing devices whose close can block (a JACK server gone or
/// stopped). Thread: loop.
bool run_within(std::function<void()> work, std::chrono::milliseconds bound) noexcept;

/// Creates the backend NodeConfig asks for: FileBackend when cfg.output is set, JackBackend when
/// cfg.host_api names JACK, else PortAudioBackend. Thread: loop. Throws DeviceError.
std::unique_ptr<AudioBackend> make_audio_backend(const NodeConfig& cfg);

/// Owns PortAudio's initialisation and one output stream.
/// Thread: construct, open, start, stop and destroy on the loop thread.
class PortAudioBackend final : public AudioBackend {
 public:
  /// Initialises PortAudio (its JACK host API kept from any JACK server: JACK goes through
  /// JackBackend) and resolves the host API and device from cfg: a device index, a name
  /// substring, or on ALSA any PCM name (hw:1,0, plughw:CARD=DAC, default), opened by name.
  /// Throws DeviceError when none matches.
  explicit PortAudioBackend(const NodeConfig& cfg);
  ~PortAudioBackend() override;
  PortAudioBackend(const PortAudioBackend&) = delete;
  PortAudioBackend& operator=(const PortAudioBackend&) = delete;

  /// Prints every output-capable device: index, host API, name, channels, default rate.
  static void list_devices(std::ostream& os);

  /// Opens the output stream feeding `mixer` (which must outlive the stream). Throws DeviceError.
  void open(Mixer& mixer) override;
  void start() override;
  /// Stops the stream (Pa_StopStream, or Pa_AbortStream when `device_gone`), closes it and
  /// terminates PortAudio, waiting at most `bound`: PortAudio's JACK host API blocks for minutes
  /// once its server is gone (issue #16 finding 3). True when all of it finished in time (the
  /// callback no longer runs); false when it did not: the work goes on in a detached thread, the
  /// backend is abandoned (its destructor leaves PortAudio alone) and the process should exit.
  /// Idempotent; the destructor calls it with a 2 s bound if it was not called.
  bool shutdown(std::chrono::milliseconds bound, bool device_gone) noexcept override;
  /// True while PortAudio reports the stream active (Pa_IsStreamActive == 1): false once the
  /// host API stopped it (JACK server gone, device error). Loop thread.
  [[nodiscard]] bool stream_active() const noexcept override;

  [[nodiscard]] double sample_rate() const noexcept override { return rate_; }
  [[nodiscard]] int channels() const noexcept override { return channels_; }
  /// Frames per callback requested (0 = host API's choice).
  [[nodiscard]] int period() const noexcept override { return period_; }
  /// PortAudio stream time now (s), the time base of the callback's timing. Loop thread.
  [[nodiscard]] double stream_time() const noexcept override;
  /// Output latency reported by Pa_GetStreamInfo (s).
  [[nodiscard]] double output_latency() const noexcept override;
  /// Pa_GetStreamCpuLoad: fraction of the callback's time budget used, smoothed by PortAudio
  /// (0..1, > 1 when overloaded); 0 when the host API does not measure it. Loop thread.
  [[nodiscard]] double cpu_load() const noexcept override;
  /// Callback durations. Any thread.
  [[nodiscard]] const CallbackTimes& callback_times() const noexcept override { return times_; }
  /// "JACK Audio Connection Kit: system (48000 Hz, 2 ch)".
  [[nodiscard]] std::string describe() const override;

 private:
  int device_ = -1;
  double rate_ = 0;
  int channels_ = 2;
  int period_ = 0;
  int rt_priority_ = 0;  ///< --rt-priority: > 0 asks ALSA for a real-time callback thread
  std::string device_name_;
  std::string alsa_pcm_;  ///< ALSA: --device opened by PCM name (not in PortAudio's list)
  std::string host_api_name_;
  int host_api_type_ = 0;  ///< PaHostApiTypeId
  PaStream* stream_ = nullptr;
  bool started_ = false;
  bool shut_down_ = false;  ///< shutdown() ran (PortAudio terminated or abandoned)
  std::pair<Mixer*, CallbackTimes*> context_{};  ///< the callback's user data
  CallbackTimes times_;
};

}  // namespace rtpnode
