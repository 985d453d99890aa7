#include "node/mixer.hpp"

#include <algorithm>
#include <cstring>

namespace rtpnode {

namespace {
constexpr frames_t kChunkFrames = 512;  // frames of one stream copied out of its ring at a time
constexpr int kMaxStreamChannels = 8;
}  // namespace

Mixer::Mixer(int device_channels, std::size_t max_streams)
    : channels_(device_channels),
      commands_(max_streams * 2 + 16),
      retired_(max_streams * 2 + 16),
      active_(max_streams, nullptr),
      scratch_(static_cast<std::size_t>(kChunkFrames) * kMaxStreamChannels) {}

bool Mixer::add(PlayoutStream* s) noexcept { return commands_.push_one({Command::Kind::add, s}); }
bool Mixer::remove(PlayoutStream* s) noexcept { return commands_.push_one({Command::Kind::remove, s}); }

PlayoutStream* Mixer::take_retired() noexcept {
  PlayoutStream* s = nullptr;
  return retired_.pop_one(s) ? s : nullptr;
}

void Mixer::apply_commands() noexcept {
  Command c{};
  while (commands_.pop_one(c)) {
    if (c.kind == Command::Kind::add) {
      if (n_active_ < active_.size()) {
        active_[n_active_++] = c.stream;
      } else {
        refused_.fetch_add(1, std::memory_order_relaxed);
        retired_.push_one(c.stream);  // sized to hold every stream: cannot fail
      }
    } else {
      for (std::size_t i = 0; i < n_active_; ++i) {
        if (active_[i] == c.stream) {
          active_[i] = active_[--n_active_];
          break;
        }
      }
      retired_.push_one(c.stream);
    }
  }
}

void Mixer::mix_stream(PlayoutStream& s, float* out, frames_t n) noexcept {
  const int ch = s.channels;
  const frames_t first = frame_ - s.start_frame;  // ring frame for device frame F
  if (first + n <= 0) return;                      // not started yet
  const frames_t offset = std::max<frames_t>(0, -first);  // block frame where the stream begins
  const frames_t want_from = std::max<frames_t>(0, first);
  frames_t want = n - offset;

  // Skip frames that belong to the past (written after their device frame went by).
  const auto read_frame = static_cast<frames_t>(s.ring.read_count()) / ch;
  if (read_frame < want_from) {
    const auto skipped = s.ring.skip(static_cast<std::size_t>(want_from - read_frame) * ch) / ch;
    s.frames_skipped.fetch_add(skipped, std::memory_order_relaxed);
  }

  float* dst = out + offset * channels_;
  frames_t got_total = 0;
  while (want > 0) {
    const frames_t chunk = std::min(want, kChunkFrames);
    const auto got = static_cast<frames_t>(s.ring.pop(scratch_.data(), static_cast<std::size_t>(chunk * ch)) / ch);
    const float* src = scratch_.data();
    for (frames_t f = 0; f < got; ++f) {
      float* o = dst + f * channels_;
      const float* i = src + f * ch;
      if (ch == channels_) {
        for (int c = 0; c < ch; ++c) o[c] += i[c];
      } else if (ch == 1) {
        for (int c = 0; c < channels_; ++c) o[c] += i[0];
      } else if (channels_ == 1) {
        float sum = 0.0f;
        for (int c = 0; c < ch; ++c) sum += i[c];
        o[0] += sum / static_cast<float>(ch);
      } else {
        for (int c = 0; c < std::min(ch, channels_); ++c) o[c] += i[c];
      }
    }
    got_total += got;
    dst += got * channels_;
    want -= got;
    if (got < chunk) break;
  }
  s.frames_played.fetch_add(static_cast<std::uint64_t>(got_total), std::memory_order_relaxed);
  if (want > 0) {  // the rest of the block stays zero: underrun
    s.underrun_frames.fetch_add(static_cast<std::uint64_t>(want), std::memory_order_relaxed);
    if (!s.in_underrun) s.underrun_events.fetch_add(1, std::memory_order_relaxed);
    s.in_underrun = true;
  } else {
    s.in_underrun = false;
  }
}

void Mixer::process(float* out, frames_t n, const BlockTiming& t) noexcept {
  apply_commands();
  std::fill_n(out, n * channels_, 0.0f);
  for (std::size_t i = 0; i < n_active_; ++i) mix_stream(*active_[i], out, n);
  if (t.xrun) xruns_.fetch_add(1, std::memory_order_relaxed);
  ++callbacks_;
  publish({frame_, n, t.current_time, t.dac_time, callbacks_});
  frame_ += n;
}

void Mixer::publish(const DevicePosition& p) noexcept {
  const std::uint32_t s = pos_seq_.load(std::memory_order_relaxed);
  pos_seq_.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  pos_frame_.store(p.frame, std::memory_order_relaxed);
  pos_block_.store(p.block_frames, std::memory_order_relaxed);
  pos_current_.store(p.current_time, std::memory_order_relaxed);
  pos_dac_.store(p.dac_time, std::memory_order_relaxed);
  pos_callbacks_.store(p.callbacks, std::memory_order_relaxed);
  pos_seq_.store(s + 2, std::memory_order_release);
}

DevicePosition Mixer::position() const noexcept {
  DevicePosition p;
  for (;;) {
    const std::uint32_t s1 = pos_seq_.load(std::memory_order_acquire);
    if (s1 & 1u) continue;
    p.frame = pos_frame_.load(std::memory_order_relaxed);
    p.block_frames = pos_block_.load(std::memory_order_relaxed);
    p.current_time = pos_current_.load(std::memory_order_relaxed);
    p.dac_time = pos_dac_.load(std::memory_order_relaxed);
    p.callbacks = pos_callbacks_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (pos_seq_.load(std::memory_order_relaxed) == s1) return p;
  }
}

}  // namespace rtpnode
