#include "node/call_recorder.hpp"

#include "node/quantise.hpp"

#include <sndfile.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <stdexcept>
#include <vector>

namespace rtpnode {

CallRecorder::CallRecorder(const std::string& path, int rate) : path_(path) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = 2;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  file_ = sf_open(path.c_str(), SFM_WRITE, &info);
  if (file_ == nullptr)
    throw std::runtime_error("--record: cannot create " + path + ": " + sf_strerror(nullptr));
  out_.reserve(kWriteFrames * 2);
}

CallRecorder::~CallRecorder() {
  close();
}

void CallRecorder::add(int side, frames_t device_frame, const float* samples, frames_t frames,
                       int channels) {
  if (file_ == nullptr || frames <= 0 || channels <= 0) return;
  if (!started_) {
    started_ = true;
    next_ = device_frame;
  }
  frames_t skip = 0;
  if (device_frame < next_) {  // already written: late
    skip = std::min(frames, next_ - device_frame);
    dropped_ += static_cast<std::uint64_t>(skip);
  }
  const frames_t end = device_frame + frames;
  const std::size_t need = head_ + static_cast<std::size_t>(std::max<frames_t>(0, end - next_));
  for (auto& v : side_)
    if (v.size() < need) v.resize(need, 0.0f);
  float* out = side_[side & 1].data() + head_ + (device_frame - next_);
  if (channels == 1) {  // a call's side is mono: no averaging
    for (frames_t i = skip; i < frames; ++i) out[i] += samples[i];
    return;
  }
  const float scale = 1.0f / static_cast<float>(channels);
  for (frames_t i = skip; i < frames; ++i) {
    float v = 0;
    for (int c = 0; c < channels; ++c) v += samples[i * channels + c];
    out[i] += v * scale;
  }
}

void CallRecorder::flush_before(frames_t device_frame) {
  if (file_ == nullptr || !started_ || device_frame <= next_) return;
  const auto total = static_cast<std::size_t>(device_frame - next_);
  const std::size_t rendered = std::min(total, side_[0].size() - head_);
  // What no side rendered (silence, a call on hold) is final as well: zeros.
  for (std::size_t done = 0; done < total;) {
    const bool silence = done >= rendered;
    const std::size_t n =
        std::min((silence ? total : rendered) - done, kWriteFrames - out_.size() / 2);
    convert(n, silence);
    if (!silence) head_ += n;
    done += n;
    drain(false);
  }
  // Written frames leave the buffers' front once they are half of them (amortised O(1) a frame);
  // both sides always have the same size.
  if (head_ == side_[0].size()) {
    for (auto& v : side_) v.clear();
    head_ = 0;
  } else if (head_ >= side_[0].size() / 2) {
    for (auto& v : side_) v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  next_ = device_frame;
  written_ += total;
}

void CallRecorder::convert(std::size_t frames, bool silence) {
  const std::size_t at = out_.size();
  out_.resize(at + frames * 2);
  std::int16_t* o = out_.data() + at;
  if (silence) return;  // resize() wrote zeros
  // s16 = round(x * 32768), clipped, as the file backend writes: a G.711 side recorded at its
  // own rate holds its decoded samples exactly (libsndfile's float conversion scales by 32767).
  quantise_s16_interleave(side_[0].data() + head_, side_[1].data() + head_, o, frames);
}

void CallRecorder::drain(bool all) {
  if (out_.empty() || (!all && out_.size() < kWriteFrames * 2)) return;
  sf_writef_short(file_, out_.data(), static_cast<sf_count_t>(out_.size() / 2));
  out_.clear();
}

void CallRecorder::close() {
  if (file_ == nullptr) return;
  flush_before(next_ + static_cast<frames_t>(side_[0].size() - head_));
  drain(true);
  sf_close(file_);
  file_ = nullptr;
}

std::string call_recording_name(std::int64_t start_ns, const std::string& call_id) {
  const std::time_t t = static_cast<std::time_t>(start_ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  std::string id;
  for (char c : call_id.substr(0, 100))
    id +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  return std::string(stamp) + "_" + id + ".wav";
}

}  // namespace rtpnode
