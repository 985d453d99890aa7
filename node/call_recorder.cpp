#include "node/call_recorder.hpp"

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
  // Full-scale floats become 32767 (libsndfile's default would wrap +1.0).
  sf_command(file_, SFC_SET_CLIPPING, nullptr, SF_TRUE);
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
  const auto need = static_cast<std::size_t>(std::max<frames_t>(0, end - next_)) * 2;
  if (pending_.size() < need) pending_.resize(need, 0.0f);
  const float scale = 1.0f / static_cast<float>(channels);
  for (frames_t i = skip; i < frames; ++i) {
    float v = 0;
    for (int c = 0; c < channels; ++c) v += samples[i * channels + c];
    pending_[static_cast<std::size_t>(device_frame + i - next_) * 2 +
             static_cast<std::size_t>(side & 1)] += v * scale;
  }
}

void CallRecorder::flush_before(frames_t device_frame) {
  if (file_ == nullptr || !started_ || device_frame <= next_) return;
  const auto total = static_cast<std::size_t>(device_frame - next_);
  const std::size_t rendered = std::min(total, pending_.size() / 2);
  std::vector<float> out(pending_.begin(),
                         pending_.begin() + static_cast<std::ptrdiff_t>(rendered * 2));
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(rendered * 2));
  // What no side rendered (silence, a call on hold) is final as well: zeros, a second at a time.
  out.resize(std::max(out.size(), std::min<std::size_t>(total, 48000) * 2), 0.0f);
  for (std::size_t done = 0; done < total;) {
    const std::size_t n = std::min(total - done, out.size() / 2);
    sf_writef_float(file_, out.data(), static_cast<sf_count_t>(n));
    if (done == 0) std::fill(out.begin(), out.end(), 0.0f);
    done += n;
  }
  next_ = device_frame;
  written_ += total;
}

void CallRecorder::close() {
  if (file_ == nullptr) return;
  flush_before(next_ + static_cast<frames_t>(pending_.size() / 2));
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
