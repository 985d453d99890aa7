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
#include <vector>
#include <string>

#include "rtp/units.hpp"

typedef struct sf_private_tag SNDFILE;

namespace rtpnode {

class CallRecorder {
 public:
  /// Creates `path` (16-bit PCM WAV, 2 channels, `rate` Hz; samples written as round(x * 32768),
  /// clipped, as node/file_backend.hpp does). Throws std::runtime_error naming
  /// the path and libsndfile's reason.
  CallRecorder(const std::string& path, int rate);
  ~CallRecorder();
  CallRecorder(const CallRecorder&) = delete;
  CallRecorder& operator=(const CallRecorder&) = delete;

  /// `frames` frames of `channels` interleaved samples that play from device frame
  /// `device_frame` on, for side 0 (left) or 1 (right); added to what that side has there.
  /// Frames before the first add() or already written are dropped (counted).
  void add(int side, frames_t device_frame, const float* samples, frames_t frames, int channels);
  /// Writes every frame before `device_frame` (final: the device has played it); the file gets
  /// them in pieces of up to kWriteFrames frames, the rest on close().
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
  frames_t next_ = 0;  ///< device frame of side_[*][head_]
  /// Each side's samples from device frame next_ on, at head_ (planar: add() is a contiguous
  /// sum the compiler vectorises).
  std::vector<float> side_[2];
  std::size_t head_ = 0;  ///< side_[*][0, head_) is written out
  /// 16-bit stereo frames converted but not yet handed to libsndfile: written in pieces of
  /// kWriteFrames (one write(2) per piece, not one per flush: 100 recordings flushed every
  /// render step made 190 k system calls a minute of capture) and on close().
  static constexpr std::size_t kWriteFrames = 8192;
  std::vector<std::int16_t> out_;
  /// Converts `frames` frames of both sides from side_[*][head_] on (or silence with
  /// `silence`) to 16-bit stereo in out_: s16 = round(x * 32768), clipped.
  void convert(std::size_t frames, bool silence);
  /// Hands out_ to libsndfile once it holds kWriteFrames (or anything, with `all`).
  void drain(bool all);
  std::uint64_t written_ = 0;
  std::uint64_t dropped_ = 0;
};

/// "20261130T064800Z_<Call-ID>.wav": the capture time of the call's start (UTC) and its
/// Call-ID with every character outside [A-Za-z0-9._-] replaced by '_' (at most 100 kept).
std::string call_recording_name(std::int64_t start_ns, const std::string& call_id);

}  // namespace rtpnode
