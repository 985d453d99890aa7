// One stereo WAV per call (issue #14, --record DIR): the caller's voice left, the callee's
// right, at the device rate -- the very frames the sources hand to the mixer (after the jitter
// buffer, concealment and drift resampling), at the device frames where they play, so the file
// keeps the call's sync as the playback does. A source's channels are averaged into its side.
//
// Frames come from Source's ring tap ahead of the device; every frame before the device's
// current one is final and written out (flush_before), so memory holds only the span the
// sources render ahead (the render lead and the jitter-buffer delay), not the call.
// Thread: loop.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "rtp/units.hpp"

typedef struct sf_private_tag SNDFILE;

namespace rtpnode {

class CallRecorder {
 public:
  /// Creates `path` (16-bit PCM WAV, 2 channels, `rate` Hz). Throws std::runtime_error naming
  /// the path and libsndfile's reason.
  CallRecorder(const std::string& path, int rate);
  ~CallRecorder();
  CallRecorder(const CallRecorder&) = delete;
  CallRecorder& operator=(const CallRecorder&) = delete;

  /// `frames` frames of `channels` interleaved samples that play from device frame
  /// `device_frame` on, for side 0 (left) or 1 (right); added to what that side has there.
  /// Frames before the first add() or already written are dropped (counted).
  void add(int side, frames_t device_frame, const float* samples, frames_t frames, int channels);
  /// Writes every frame before `device_frame` (final: the device has played it).
  void flush_before(frames_t device_frame);
  /// Writes everything and closes the file. Idempotent.
  void close();
  [[nodiscard]] std::uint64_t frames_written() const noexcept { return written_; }
  [[nodiscard]] std::uint64_t frames_dropped() const noexcept { return dropped_; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  SNDFILE* file_ = nullptr;
  bool started_ = false;
  frames_t next_ = 0;          ///< device frame of pending_.front()
  std::deque<float> pending_;  ///< interleaved stereo from device frame next_ on
  std::uint64_t written_ = 0;
  std::uint64_t dropped_ = 0;
};

/// "20261130T064800Z_<Call-ID>.wav": the capture time of the call's start (UTC) and its
/// Call-ID with every character outside [A-Za-z0-9._-] replaced by '_' (at most 100 kept).
std::string call_recording_name(std::int64_t start_ns, const std::string& call_id);

}  // namespace rtpnode
