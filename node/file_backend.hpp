// The file backend: renders the mix to a WAV, RF64 or FLAC file (libsndfile) instead of a device,
// paced by a virtual device clock (issue #13, the audio output seam). Block k covers device frames
// [k * period, (k + 1) * period) and is written at file frame k * period; its BlockTiming
// current_time is k * period / rate seconds of the virtual clock, and the output latency is 0
// (the file is the "DAC").
//
// Pacing:
//  - real_time: a thread of its own (the backend's "audio thread") processes block k at
//    monotonic time start + k * period / rate, so network input plays as on a device. When the
//    thread falls more than kMaxLateBlocks blocks behind (a disk stall), it writes silence for
//    the blocks it missed and flags the next block as an xrun: the file stays on the wall clock,
//    as a device's position would.
//  - driven: no thread; render() processes blocks when its caller says (a capture-file reader,
//    issue #14, renders as fast as the CPU allows). stream_time() is the virtual clock.
//
// Samples are written as the mixer produced them, rounded to the output format (no dither):
// s16 = round(x * 32768), s24 = round(x * 8388608), clipped to the format's range; f32 as is.
// A mix of one L16 stream at the output rate is therefore written bit-exact.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "node/audio_backend.hpp"

typedef struct sf_private_tag SNDFILE;

namespace rtpnode {

class FileBackend final : public AudioBackend {
 public:
  enum class Pacing : std::uint8_t { real_time, driven };
  struct Options {
    /// Ends in .wav (RIFF WAVE, plain PCM/float format tags; at most 4 GB: 6.2 h of s16 stereo
    /// at 48 kHz), .rf64 (EBU RF64, no size limit) or .flac (no size limit); case-insensitive.
    std::string path;
    std::string format = "s16";  ///< s16, s24 or f32 (f32: not FLAC)
    double rate = 48000;         ///< frames per second, 8000..384000
    int channels = 2;            ///< 1..64
    int period = 256;            ///< frames per block, 16..16384
    Pacing pacing = Pacing::real_time;
  };
  /// Blocks the real-time thread may fall behind before it skips ahead (writing silence).
  static constexpr int kMaxLateBlocks = 8;

  /// Creates (truncates) the file. Thread: loop. A write failure later (disk full, the WAV 4 GB
  /// limit) stops the output: stream_active() turns false, as for a lost device. Throws
  /// DeviceError naming the path and the
  /// reason: unknown extension, format not valid for the container, bad rate/channels/period,
  /// or libsndfile's error (directory missing, no permission).
  explicit FileBackend(Options o);
  /// Options from --output, --output-format, --rate, --channels and --period: real-time pacing,
  /// driven for an offline render (NodeConfig::offline: --pcap without --real-time).
  static Options options_from(const NodeConfig& cfg);
  ~FileBackend() override;
  FileBackend(const FileBackend&) = delete;
  FileBackend& operator=(const FileBackend&) = delete;

  void open(Mixer& mixer) override;
  /// real_time: starts the pacing thread. driven: nothing (call render()).
  void start() override;
  /// Stops the thread (it finishes the block it is on), then finalises and closes the file.
  /// Always in time: true.
  bool shutdown(std::chrono::milliseconds bound, bool device_gone) noexcept override;
  [[nodiscard]] bool stream_active() const noexcept override;
  [[nodiscard]] double sample_rate() const noexcept override { return o_.rate; }
  [[nodiscard]] int channels() const noexcept override { return o_.channels; }
  [[nodiscard]] int period() const noexcept override { return o_.period; }
  /// real_time: monotonic seconds since start(); driven: the time of the next block.
  [[nodiscard]] double stream_time() const noexcept override;
  [[nodiscard]] double output_latency() const noexcept override { return 0.0; }
  [[nodiscard]] double cpu_load() const noexcept override { return 0.0; }
  [[nodiscard]] const CallbackTimes& callback_times() const noexcept override { return times_; }
  /// "file mix.wav (WAV s16, 48000 Hz, 2 ch, real time)".
  [[nodiscard]] std::string describe() const override;

  /// Driven pacing only: processes and writes `blocks` blocks now, on the calling thread (which
  /// takes the audio thread's role for the mixer). False when a write failed (the file is then
  /// inactive).
  bool render(std::size_t blocks);
  /// Frames written so far (blocks x period). Any thread.
  [[nodiscard]] std::uint64_t frames_written() const noexcept {
    return frames_.load(std::memory_order_acquire);
  }

 private:
  /// Processes block `index` (xrun flag given) and writes it; false on a write error.
  bool write_block(std::uint64_t index, bool xrun);
  bool write_silence(std::uint64_t blocks);
  void run_real_time();

  Options o_;
  SNDFILE* file_ = nullptr;
  Mixer* mixer_ = nullptr;
  std::vector<float> block_;
  std::vector<std::int16_t> s16_;
  std::vector<std::int32_t> s32_;
  CallbackTimes times_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::atomic<std::uint64_t> frames_{0};
  std::uint64_t start_ns_ = 0;  ///< real_time: monotonic time of block 0
  std::uint64_t blocks_ = 0;    ///< driven: blocks rendered
  bool started_ = false;
  bool closed_ = false;
};

/// A backend a test drives: it owns no thread and no device; pull() processes one block on the
/// caller's thread, and the virtual stream time advances with the frames pulled (or as
/// set_stream_time() says). Lets tests run everything above the device without JACK.
/// Thread: one test thread for everything.
class ManualBackend final : public AudioBackend {
 public:
  ManualBackend(double rate, int channels, int period)
      : rate_(rate), channels_(channels), period_(period) {}
  void open(Mixer& mixer) override { mixer_ = &mixer; }
  void start() override { active_ = true; }
  bool shutdown(std::chrono::milliseconds, bool) noexcept override {
    active_ = false;
    return true;
  }
  [[nodiscard]] bool stream_active() const noexcept override { return active_; }
  [[nodiscard]] double sample_rate() const noexcept override { return rate_; }
  [[nodiscard]] int channels() const noexcept override { return channels_; }
  [[nodiscard]] int period() const noexcept override { return period_; }
  [[nodiscard]] double stream_time() const noexcept override { return time_s_; }
  [[nodiscard]] double output_latency() const noexcept override { return 0.0; }
  [[nodiscard]] double cpu_load() const noexcept override { return 0.0; }
  [[nodiscard]] const CallbackTimes& callback_times() const noexcept override { return times_; }
  [[nodiscard]] std::string describe() const override { return "manual"; }

  /// Processes one block of `frames` frames (default: period) at the current virtual time and
  /// returns it (interleaved, channels() per frame); the time then advances by the block.
  /// `xrun` is passed to the mixer as a device xrun.
  std::vector<float> pull(frames_t frames = 0, bool xrun = false);
  /// Sets the virtual stream time (s) the next block starts at and stream_time() reports.
  void set_stream_time(double s) noexcept { time_s_ = s; }

 private:
  double rate_;
  int channels_;
  int period_;
  Mixer* mixer_ = nullptr;
  bool active_ = false;
  double time_s_ = 0.0;
  CallbackTimes times_;
};

}  // namespace rtpnode
