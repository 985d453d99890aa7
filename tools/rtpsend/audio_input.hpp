// rtpsend's audio input: files (any format libsndfile reads, or headerless s16le PCM) and test
// signals, converted to the stream's channels and rate. The system-test harness reads its
// recordings through read_audio_file too, so both see the same 16-bit samples.
// Thread: any; every function is pure apart from reading its file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rtp/payload_format.hpp"

namespace rtpnode::rtpsend {

/// Interleaved 16-bit audio.
struct Audio {
  std::vector<std::int16_t> samples;  ///< interleaved
  int rate = 0;                       ///< frames per second
  int channels = 0;
  [[nodiscard]] std::size_t frames() const {
    return channels ? samples.size() / static_cast<std::size_t>(channels) : 0;
  }
};

/// Reads a whole file as 16-bit samples. Throws std::runtime_error naming the file when it
/// cannot be read or holds no audio.
Audio read_audio_file(const std::string& path);
/// A headerless PCM file in the --raw-format layout (s16le, s16be, s24le or f32le/RATE/CHANNELS;
/// libsndfile converts to 16 bits). Throws likewise.
Audio read_raw_file(const std::string& path, const PayloadFormat& f);
/// One second of a test signal at `rate` Hz mono that loops seamlessly: "tone" (`value` Hz, a
/// whole number, -6 dBFS), "clicks" (`value` impulses per second, -1 dBFS) or "silence". Made at
/// the rate it is sent at: resampled, the one-second loop would lose the resampler's latency at
/// its end (a 16 ms dip once a second at 8 kHz).
Audio make_signal(const std::string& kind, double value, int rate = 48000);
/// Mono to many channels (copied) or many to mono (averaged); channels beyond the input's repeat
/// its last one.
Audio to_channels(const Audio& in, int channels);
/// speexdsp at quality 10 (skip_zeros: frame k of the output is input time k). Throws when the
/// resampler cannot be created.
Audio resample(const Audio& in, int rate);

}  // namespace rtpnode::rtpsend
