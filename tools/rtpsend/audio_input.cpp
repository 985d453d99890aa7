#include "tools/rtpsend/audio_input.hpp"

#include <sndfile.h>
#include <speex/speex_resampler.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace rtpnode::rtpsend {

Audio read_audio_file(const std::string& path) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (!f) throw std::runtime_error("cannot read '" + path + "': " + sf_strerror(nullptr));
  Audio a;
  a.rate = info.samplerate;
  a.channels = info.channels;
  a.samples.resize(static_cast<std::size_t>(info.frames) * static_cast<std::size_t>(info.channels));
  const sf_count_t got = sf_readf_short(f, a.samples.data(), info.frames);
  sf_close(f);
  a.samples.resize(static_cast<std::size_t>(got) * static_cast<std::size_t>(a.channels));
  if (got == 0) throw std::runtime_error("'" + path + "' holds no audio");
  return a;
}

Audio read_raw_file(const std::string& path, const PayloadFormat& f) {
  // libsndfile reads headerless PCM when told its layout (SF_FORMAT_RAW).
  SF_INFO info{};
  info.samplerate = static_cast<int>(f.audio_rate);
  info.channels = f.channels;
  switch (f.codec) {
    case Codec::raw_s16be:
      info.format = SF_FORMAT_RAW | SF_FORMAT_PCM_16 | SF_ENDIAN_BIG;
      break;
    case Codec::raw_s24le:
      info.format = SF_FORMAT_RAW | SF_FORMAT_PCM_24 | SF_ENDIAN_LITTLE;
      break;
    case Codec::raw_f32le:
      info.format = SF_FORMAT_RAW | SF_FORMAT_FLOAT | SF_ENDIAN_LITTLE;
      break;
    default:
      info.format = SF_FORMAT_RAW | SF_FORMAT_PCM_16 | SF_ENDIAN_LITTLE;
      break;
  }
  SNDFILE* file = sf_open(path.c_str(), SFM_READ, &info);
  if (!file) throw std::runtime_error("cannot read '" + path + "': " + sf_strerror(nullptr));
  // Read as float (full scale +-1 for every layout), then rounded to 16 bits.
  std::vector<float> v(static_cast<std::size_t>(info.frames) * f.channels);
  const sf_count_t got = sf_readf_float(file, v.data(), info.frames);
  sf_close(file);
  Audio a{{}, static_cast<int>(f.audio_rate), f.channels};
  a.samples.resize(static_cast<std::size_t>(std::max<sf_count_t>(got, 0)) * f.channels);
  for (std::size_t i = 0; i < a.samples.size(); ++i)
    a.samples[i] = static_cast<std::int16_t>(
        std::clamp(std::lround(static_cast<double>(v[i]) * 32768.0), -32768L, 32767L));
  if (a.samples.empty()) throw std::runtime_error("'" + path + "' holds no audio");
  return a;
}

Audio make_signal(const std::string& kind, double value, int rate) {
  Audio a{std::vector<std::int16_t>(static_cast<std::size_t>(rate), 0), rate, 1};
  if (kind == "tone") {
    for (int i = 0; i < rate; ++i)
      a.samples[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(
          std::lround(16384.0 * std::sin(2 * M_PI * value * i / static_cast<double>(rate))));
  } else if (kind == "clicks") {
    const int every = std::max(1, static_cast<int>(rate / value));
    for (int i = 0; i < rate; i += every)
      a.samples[static_cast<std::size_t>(i)] = 29491;  // -1 dBFS impulse
  }
  return a;
}

Audio to_channels(const Audio& in, int channels) {
  if (in.channels == channels) return in;
  Audio out{{}, in.rate, channels};
  out.samples.resize(in.frames() * static_cast<std::size_t>(channels));
  for (std::size_t f = 0; f < in.frames(); ++f) {
    if (channels == 1) {
      int sum = 0;
      for (int c = 0; c < in.channels; ++c) sum += in.samples[f * in.channels + c];
      out.samples[f] = static_cast<std::int16_t>(sum / in.channels);
    } else {
      for (int c = 0; c < channels; ++c)
        out.samples[f * channels + c] = in.samples[f * in.channels + std::min(c, in.channels - 1)];
    }
  }
  return out;
}

Audio resample(const Audio& in, int rate) {
  if (in.rate == rate) return in;
  int err = 0;
  SpeexResamplerState* st = speex_resampler_init(in.channels, in.rate, rate, 10, &err);
  if (!st) throw std::runtime_error(std::string("resampler: ") + speex_resampler_strerror(err));
  speex_resampler_skip_zeros(st);
  Audio out{{}, rate, in.channels};
  out.samples.resize((in.frames() * static_cast<std::size_t>(rate) / in.rate + 64) * in.channels);
  spx_uint32_t in_len = static_cast<spx_uint32_t>(in.frames());
  spx_uint32_t out_len = static_cast<spx_uint32_t>(out.samples.size() / in.channels);
  speex_resampler_process_interleaved_int(st, in.samples.data(), &in_len, out.samples.data(),
                                          &out_len);
  speex_resampler_destroy(st);
  out.samples.resize(std::size_t{out_len} * in.channels);
  return out;
}

}  // namespace rtpnode::rtpsend
