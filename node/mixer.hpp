// The audio-thread side of rtpnode: PlayoutStream (one source's ring of PCM frames placed on the
// device timeline) and Mixer (sums every stream's frames for the device block [F, F+n)).
//
// Timeline (DESIGN.md): the master clock is the device frame counter F, the sum of the frame
// counts of every block since the stream started. A PlayoutStream's ring frame k plays at device
// frame start_frame + k, exactly: the mixer reads ring frame F - start_frame for device frame F.
// Frames the ring does not hold yet are zero-filled and counted as an underrun; frames that are
// already in the past are skipped and counted.
//
// Lifecycle rules (the loop thread is the one that creates and frees):
//  1. The loop thread allocates a PlayoutStream, then Mixer::add() hands its pointer to the
//     audio thread through the command ring.
//  2. Mixer::remove() asks the audio thread to detach it; the audio thread pushes the pointer to
//     the retire ring; the loop thread frees it only after Mixer::take_retired() returns it.
//  3. Only the audio thread calls Mixer::process().
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "node/realtime.hpp"
#include "node/spsc_ring.hpp"
#include "rtp/units.hpp"

namespace rtpnode {

/// One source's audio on its way to the device.
class PlayoutStream {
 public:
  /// `channels` 1..8; `capacity_frames` rounded up to a power of two; `start_frame` is the device
  /// frame at which ring frame 0 plays. Thread: loop (allocates).
  PlayoutStream(std::uint32_t id, int channels, std::size_t capacity_frames, frames_t start_frame)
      : id(id), channels(channels), start_frame(start_frame),
        ring(capacity_frames * static_cast<std::size_t>(channels)) {}

  const std::uint32_t id;
  const int channels;
  const frames_t start_frame;
  /// Interleaved float samples; counters count samples (frames * channels).
  /// Producer: loop thread. Consumer: audio thread.
  SpscRing<float> ring;

  /// Frames the loop thread may still push. Loop thread; wait-free.
  [[nodiscard]] frames_t free_frames() const noexcept {
    return static_cast<frames_t>(ring.free_space()) / channels;
  }
  /// Frames pushed so far (ring frame index of the next push). Any thread; wait-free.
  [[nodiscard]] frames_t written_frames() const noexcept {
    return static_cast<frames_t>(ring.write_count()) / channels;
  }

  // Written by the audio thread (relaxed), read by the loop thread. Monotonic.
  std::atomic<std::uint64_t> underrun_events{0};  ///< blocks that began an underrun run
  std::atomic<std::uint64_t> underrun_frames{0};  ///< frames zero-filled for missing audio
  std::atomic<std::uint64_t> frames_played{0};    ///< ring frames mixed into the device
  std::atomic<std::uint64_t> frames_skipped{0};   ///< ring frames dropped: arrived after their frame

  // Audio thread only.
  bool in_underrun = false;
};

/// Block timing from the device callback.
struct BlockTiming {
  double current_time = 0.0;  ///< stream time of the callback (s), PortAudio time base
  double dac_time = 0.0;      ///< stream time the block's first frame reaches the DAC (s)
  bool xrun = false;          ///< the device reported an output underflow/overflow
};

/// Device position published by the audio thread once per block (seqlock), read by the loop.
struct DevicePosition {
  frames_t frame = 0;          ///< F at the start of the last block
  frames_t block_frames = 0;   ///< that block's frame count
  double current_time = 0.0;   ///< its BlockTiming::current_time
  double dac_time = 0.0;       ///< its BlockTiming::dac_time
  std::uint64_t callbacks = 0; ///< blocks processed so far (0: none yet)
};

class Mixer {
 public:
  /// `device_channels` 1..64; at most `max_streams` streams at once. Thread: loop (allocates).
  Mixer(int device_channels, std::size_t max_streams);

  /// Loop thread; wait-free. Queues `s` for mixing; false when the command ring is full.
  bool add(PlayoutStream* s) noexcept;
  /// Loop thread; wait-free. Queues the detach of `s`; it comes back through take_retired().
  bool remove(PlayoutStream* s) noexcept;
  /// Loop thread; wait-free. A stream the audio thread has let go of, or nullptr.
  PlayoutStream* take_retired() noexcept;

  /// Audio thread; wait-free, bounded by streams × frames. Fills `out` (n frames, interleaved
  /// device_channels) with the mix of every stream for device frames [F, F+n), then advances F
  /// and publishes the position. No allocation, lock, system call or exception.
  RTPNODE_REALTIME void process(float* out, frames_t n, const BlockTiming& t) noexcept;

  /// Any thread; lock-free (retries while the audio thread writes). The last published position.
  [[nodiscard]] DevicePosition position() const noexcept;

  [[nodiscard]] int device_channels() const noexcept { return channels_; }
  /// Device xruns reported through BlockTiming::xrun. Any thread; wait-free.
  [[nodiscard]] std::uint64_t xruns() const noexcept { return xruns_.load(std::memory_order_relaxed); }
  /// Streams refused because every slot was taken. Any thread; wait-free.
  [[nodiscard]] std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

 private:
  struct Command {
    enum class Kind : std::uint8_t { add, remove } kind;
    PlayoutStream* stream;
  };
  RTPNODE_REALTIME void apply_commands() noexcept;
  RTPNODE_REALTIME void mix_stream(PlayoutStream& s, float* out, frames_t n) noexcept;
  void publish(const DevicePosition& p) noexcept;

  const int channels_;
  SpscRing<Command> commands_;
  SpscRing<PlayoutStream*> retired_;
  std::vector<PlayoutStream*> active_;  ///< fixed capacity; audio thread only
  std::size_t n_active_ = 0;
  std::vector<float> scratch_;          ///< one chunk of a stream's samples; audio thread only
  frames_t frame_ = 0;                  ///< F; audio thread only
  std::uint64_t callbacks_ = 0;

  std::atomic<std::uint64_t> xruns_{0};
  std::atomic<std::uint64_t> refused_{0};
  // Seqlock for DevicePosition: odd while being written.
  std::atomic<std::uint32_t> pos_seq_{0};
  std::atomic<frames_t> pos_frame_{0};
  std::atomic<frames_t> pos_block_{0};
  std::atomic<double> pos_current_{0.0};
  std::atomic<double> pos_dac_{0.0};
  std::atomic<std::uint64_t> pos_callbacks_{0};
};

}  // namespace rtpnode
