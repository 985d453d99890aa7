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
//  2. Mixer::remove() asks the audio thread to detach it; the audio thread sets `detached` and
//     pushes the pointer to the retire ring. A refused add (every slot taken) is detached the
//     same way, at once.
//  3. Every command names its stream by pointer, so a stream may be freed only when the audio
//     thread can never read it again: Mixer::releasable() is true once it is detached AND the
//     audio thread has consumed every command the loop ever sent for it (commands are numbered;
//     the audio thread publishes how many it has applied). `detached` alone is not enough: a
//     gain, route or remove command sent before the loop saw the flag may still be queued
//     (issue #16: a refused add followed by a remove was a use-after-free on the audio thread).
//  4. Commands for a stream that is not being mixed (refused, or already detached) are ignored
//     by the audio thread; an add of a stream already mixed is ignored too.
//  5. Commands are never lost: when the command ring is full they wait, in order, in a loop-side
//     queue that every later call (and flush_deferred()) drains first; mixer_commands_deferred
//     counts them. So a remove always arrives, and a stream always comes back.
//  6. Only the audio thread calls Mixer::process().
//
// Gain, routing and ramps (issue #4): every stream has a user gain and a route (which device
// channel each of its channels feeds, see Route). Changes travel through the command ring with
// the device frame at which they take effect, so they apply at that exact frame whatever the
// block size. With a ramp length R > 0 (Mixer constructor; the node uses 5 ms) nothing steps:
//  - join: the stream's first R frames fade in linearly (frame k of the stream gets (k+1)/R);
//  - leave: from the requested frame the stream fades out over R frames, then it is detached;
//  - gain and mute: the gain moves linearly from its current value to the new one over R frames;
//  - route: the stream fades out over R frames, switches route, and fades back in over R frames.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <vector>

#include "node/realtime.hpp"
#include "node/spsc_ring.hpp"
#include "rtp/units.hpp"

namespace rtpnode {

/// Where a stream's channels go: `taps` (source channel, device channel, weight) triples, summed.
struct Route {
  static constexpr int kMaxTaps = 64;
  std::array<std::uint8_t, kMaxTaps> src{};  ///< stream channel, 0-based
  std::array<std::uint8_t, kMaxTaps> dst{};  ///< device channel, 0-based
  std::array<float, kMaxTaps> weight{};      ///< linear gain of that tap
  int taps = 0;

  /// The default when no --route is given: equal channel counts map one to one; a mono stream
  /// feeds every device channel; a mono device gets the average of the stream's channels;
  /// otherwise channel i feeds device channel i (extra channels are dropped).
  static Route standard(int stream_channels, int device_channels);
  /// `device_channels`: 0-based device channels, 1..64 of them, each < 64. A mono stream feeds
  /// each listed channel; N channels onto N listed channels map in order; N channels onto one
  /// listed channel are averaged; otherwise stream channel i feeds listed channel i mod size,
  /// each device channel averaging what reaches it.
  static Route to_channels(int stream_channels, const std::vector<int>& device_channels);
};

/// A linear gain ramp on the device timeline: `from` before frame `start`, `to` from
/// start + len on, and from + (to - from) * (k + 1) / len at frame start + k in between.
struct GainRamp {
  float from = 1.0f;
  float to = 1.0f;
  frames_t start = 0;
  frames_t len = 0;
  /// Any thread; pure.
  [[nodiscard]] float at(frames_t frame) const noexcept {
    if (frame < start) return from;
    if (frame - start >= len - 1) return to;
    return from + (to - from) * (static_cast<float>(frame - start + 1) / static_cast<float>(len));
  }
  /// True when the gain is constant over [a, b).
  [[nodiscard]] bool flat(frames_t a, frames_t b) const noexcept {
    return from == to || b <= start || a >= start + len - 1;
  }
};

/// One source's audio on its way to the device.
class PlayoutStream {
 public:
  /// `channels` 1..64; `capacity_frames` rounded up to a power of two; `start_frame` is the device
  /// frame at which ring frame 0 plays. Thread: loop (allocates).
  PlayoutStream(std::uint32_t id, int channels, std::size_t capacity_frames, frames_t start_frame)
      : id(id),
        channels(channels),
        start_frame(start_frame),
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
  std::atomic<std::uint64_t> frames_skipped{0};  ///< ring frames dropped: arrived after their frame

  /// Route slots: the loop thread writes the slot a set_route command names and does not touch it
  /// again until route_acks shows the command was applied (Mixer::set_route).
  std::array<Route, 2> routes{};
  std::atomic<std::uint64_t> route_acks{0};  ///< set_route commands applied (audio thread)
  /// Set by the audio thread once the stream has been detached after a leave ramp (or at once).
  std::atomic<bool> detached{false};
  // Loop thread only: the route slot last sent and how many set_route commands were sent.
  int loop_route_slot = 0;
  std::uint64_t routes_sent = 0;
  /// Loop thread only: number of the last command sent for this stream (Mixer rule 3).
  std::uint64_t last_command = 0;

  // Audio thread only.
  bool mixing = false;  ///< in the mixer's active list
  bool in_underrun = false;
  int route_slot = 0;              ///< routes[] entry in use
  GainRamp user_gain;              ///< the gain set by set_gain (mute = 0)
  GainRamp fade;                   ///< join / leave / route-switch fades
  frames_t pending_gain_at = -1;   ///< a set_gain not yet due: at this frame ...
  float pending_gain = 1.0f;       ///< ... ramp to this gain
  frames_t pending_route_at = -1;  ///< a set_route not yet due: fade out from this frame ...
  int pending_route_slot = 0;      ///< ... then switch to this slot
  frames_t route_switch_at = -1;   ///< the frame at which the route switches (fade is at 0)
  frames_t leave_at = -1;          ///< fade out from this frame, then detach
};

/// Block timing from the device callback.
struct BlockTiming {
  double current_time = 0.0;  ///< stream time of the callback (s), PortAudio time base
  double dac_time = 0.0;      ///< stream time the block's first frame reaches the DAC (s)
  bool xrun = false;          ///< the device reported an output underflow/overflow
};

/// Device position published by the audio thread once per block (seqlock), read by the loop.
struct DevicePosition {
  frames_t frame = 0;           ///< F at the start of the last block
  frames_t block_frames = 0;    ///< that block's frame count
  double current_time = 0.0;    ///< its BlockTiming::current_time
  double dac_time = 0.0;        ///< its BlockTiming::dac_time
  std::uint64_t callbacks = 0;  ///< blocks processed so far (0: none yet)
};

class Mixer {
 public:
  /// `device_channels` 1..64; at most `max_streams` streams at once; `ramp_frames` >= 0 is the
  /// length of join/leave/gain/route ramps (0: changes step, as the sample-exact tests want).
  /// Thread: loop (allocates).
  Mixer(int device_channels, std::size_t max_streams, frames_t ramp_frames = 0);

  // Commands (loop thread only). Each is sent through the command ring, or, while the ring is
  // full, queued on the loop side in order (rule 5): wait-free while the ring has room; may
  // allocate otherwise. None is ever dropped.

  /// Queues `s` for mixing with `route` (copied into routes[0]) and user gain `gain` (linear); it
  /// fades in over the ramp from its start_frame. When every slot is taken the audio thread
  /// refuses it: it comes back detached (refused() counts it).
  void add(PlayoutStream* s, const Route& route, float gain = 1.0f);
  /// As above with Route::standard.
  void add(PlayoutStream* s);
  /// Queues the detach of `s`: it fades out over the ramp from device frame `at` (at once when
  /// `at` is past), then `detached` turns true and it comes back through take_retired().
  void remove(PlayoutStream* s, frames_t at = 0);
  /// From device frame `at`, the gain ramps to `gain` (linear, >= 0; 0 mutes). A later set_gain
  /// replaces one not yet due.
  void set_gain(PlayoutStream* s, float gain, frames_t at);
  /// Fades `s` out from frame `at`, switches to `route`, fades back in. False (nothing sent)
  /// while the previous set_route of `s` is not applied yet: retry later.
  bool set_route(PlayoutStream* s, const Route& route, frames_t at);
  /// Sends what waits in the loop-side queue, as far as the ring has room.
  void flush_deferred();
  /// Loop thread; wait-free. A stream the audio thread has let go of, or nullptr (draining it
  /// is optional: releasable() is what allows freeing).
  PlayoutStream* take_retired() noexcept;
  /// Loop thread; wait-free. True when `s` may be freed (rule 3): detached, and every command
  /// sent for it has been consumed by the audio thread.
  [[nodiscard]] bool releasable(const PlayoutStream& s) const noexcept;

  /// Audio thread; wait-free, bounded by streams × frames. Fills `out` (n frames, interleaved
  /// device_channels) with the mix of every stream for device frames [F, F+n), then advances F
  /// and publishes the position. No allocation, lock, system call or exception.
  RTPNODE_REALTIME void process(float* out, frames_t n, const BlockTiming& t) noexcept;

  /// Resumes the device frame counter F on a clock that went on while no audio thread ran
  /// (a suspended device opened again): the next block, whatever its BlockTiming::current_time
  /// `t`, plays frame max(F, f + round((t - stream_time_s) * rate)), so F goes on as if the
  /// device had played meanwhile and sources placed on the extrapolated clock stay placed,
  /// however long the new device took to start its first cycle (JACK's activation: 10-20 ms
  /// here, measured). `stream_time_s` is the new device's stream time (the BlockTiming time
  /// base) read together with `f`; `rate` in Hz (> 0). Thread: loop, while no audio thread runs
  /// (between one backend's shutdown and the next one's start; the start creates the audio
  /// thread, which orders these writes before its first block).
  void resume_at(frames_t f, double stream_time_s, double rate) noexcept {
    resume_frame_ = f;
    resume_time_s_ = stream_time_s;
    resume_rate_ = rate;
    resume_pending_ = true;
  }

  /// Any thread; lock-free (retries while the audio thread writes). The last published position.
  [[nodiscard]] DevicePosition position() const noexcept;

  [[nodiscard]] int device_channels() const noexcept { return channels_; }
  /// Device xruns reported through BlockTiming::xrun. Any thread; wait-free.
  [[nodiscard]] std::uint64_t xruns() const noexcept {
    return xruns_.load(std::memory_order_relaxed);
  }
  /// Output samples that were beyond full scale (|x| > 1, or NaN) and were clipped to ±1 (0 for
  /// NaN) before they reached the device: the node's headroom guard (#17). Any thread;
  /// wait-free.
  [[nodiscard]] std::uint64_t samples_clipped() const noexcept {
    return clipped_.load(std::memory_order_relaxed);
  }
  /// Streams refused because every slot was taken. Any thread; wait-free.
  [[nodiscard]] std::uint64_t refused() const noexcept {
    return refused_.load(std::memory_order_relaxed);
  }
  /// Commands that found the command ring full and waited in the loop-side queue. Loop thread.
  [[nodiscard]] std::uint64_t commands_deferred() const noexcept { return deferred_total_; }
  /// Commands waiting in the loop-side queue now. Loop thread.
  [[nodiscard]] std::size_t commands_waiting() const noexcept { return deferred_.size(); }

 private:
  struct Command {
    enum class Kind : std::uint8_t { add, remove, gain, route } kind;
    PlayoutStream* stream;
    frames_t at = 0;
    float value = 1.0f;
    int slot = 0;
  };
  /// Loop thread: numbers `c`, records it on its stream, sends or queues it.
  void send(const Command& c);
  RTPNODE_REALTIME void apply_commands() noexcept;
  /// Starts whatever of `s`'s pending changes is due before device frame `until`.
  RTPNODE_REALTIME void start_due_changes(PlayoutStream& s, frames_t until) noexcept;
  /// Mixes ring frames [0, got) of scratch_ into device frames [from, from + got) of `dst`.
  RTPNODE_REALTIME void mix_frames(PlayoutStream& s, const float* src, float* dst, frames_t from,
                                   frames_t got) noexcept;
  /// True when `s` finished its leave fade before device frame `frame`.
  [[nodiscard]] RTPNODE_REALTIME bool left(const PlayoutStream& s, frames_t frame) const noexcept;
  RTPNODE_REALTIME void detach(std::size_t index) noexcept;
  RTPNODE_REALTIME void mix_stream(PlayoutStream& s, float* out, frames_t n) noexcept;
  void publish(const DevicePosition& p) noexcept;

  const int channels_;
  const frames_t ramp_;
  SpscRing<Command> commands_;
  SpscRing<PlayoutStream*> retired_;
  // Loop thread only.
  std::uint64_t sent_ = 0;        ///< commands numbered so far (sent or queued)
  std::deque<Command> deferred_;  ///< waiting for room in commands_, in order
  std::uint64_t deferred_total_ = 0;
  /// Commands the audio thread has consumed (applied or ignored). Written by the audio thread
  /// (release) after each batch; read by the loop (acquire) in releasable().
  std::atomic<std::uint64_t> applied_{0};
  std::vector<PlayoutStream*> active_;  ///< fixed capacity; audio thread only
  std::size_t n_active_ = 0;
  std::vector<float> scratch_;  ///< one chunk of a stream's samples; audio thread only
  frames_t frame_ = 0;          ///< F; audio thread only
  frames_t resume_frame_ = 0;   ///< resume_at(): applied by the next block
  double resume_time_s_ = 0;
  double resume_rate_ = 0;
  bool resume_pending_ = false;
  std::uint64_t callbacks_ = 0;

  std::atomic<std::uint64_t> xruns_{0};
  std::atomic<std::uint64_t> clipped_{0};
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
