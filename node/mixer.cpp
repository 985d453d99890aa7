#include "node/mixer.hpp"

#include <algorithm>
#include <cmath>

namespace rtpnode {

namespace {
constexpr frames_t kChunkFrames = 512;  // frames of one stream copied out of its ring at a time
constexpr int kMaxStreamChannels = 8;   // sizes the scratch; wider streams take shorter chunks
}  // namespace

Route Route::standard(int stream_channels, int device_channels) {
  Route r;
  auto tap = [&r](int src, int dst, float w) {
    if (r.taps >= kMaxTaps) return;
    r.src[static_cast<std::size_t>(r.taps)] = static_cast<std::uint8_t>(src);
    r.dst[static_cast<std::size_t>(r.taps)] = static_cast<std::uint8_t>(dst);
    r.weight[static_cast<std::size_t>(r.taps)] = w;
    ++r.taps;
  };
  if (stream_channels == device_channels) {
    for (int c = 0; c < stream_channels; ++c) tap(c, c, 1.0f);
  } else if (stream_channels == 1) {
    for (int c = 0; c < device_channels; ++c) tap(0, c, 1.0f);
  } else if (device_channels == 1) {
    for (int c = 0; c < stream_channels; ++c) tap(c, 0, 1.0f / static_cast<float>(stream_channels));
  } else {
    for (int c = 0; c < std::min(stream_channels, device_channels); ++c) tap(c, c, 1.0f);
  }
  return r;
}

Route Route::to_channels(int stream_channels, const std::vector<int>& device_channels) {
  Route r;
  const int n = static_cast<int>(device_channels.size());
  if (n == 0) return r;
  std::array<int, kMaxTaps> fan_in{};  // stream channels reaching each listed position
  auto dst_of = [&](int src) { return stream_channels == 1 ? -1 : src % n; };
  if (stream_channels > 1)
    for (int c = 0; c < stream_channels; ++c) ++fan_in[static_cast<std::size_t>(dst_of(c))];
  for (int c = 0; c < stream_channels; ++c) {
    for (int k = 0; k < n && r.taps < kMaxTaps; ++k) {
      if (stream_channels > 1 && k != dst_of(c)) continue;
      const auto i = static_cast<std::size_t>(r.taps++);
      r.src[i] = static_cast<std::uint8_t>(c);
      r.dst[i] = static_cast<std::uint8_t>(device_channels[static_cast<std::size_t>(k)]);
      r.weight[i] = stream_channels == 1
                        ? 1.0f
                        : 1.0f / static_cast<float>(fan_in[static_cast<std::size_t>(k)]);
    }
  }
  return r;
}

Mixer::Mixer(int device_channels, std::size_t max_streams, frames_t ramp_frames)
    : channels_(device_channels),
      ramp_(std::max<frames_t>(0, ramp_frames)),
      // Room for every stream's add, remove and a few changes each.
      commands_(max_streams * 8 + 64),
      retired_(max_streams * 2 + 16),
      active_(max_streams, nullptr),
      scratch_(static_cast<std::size_t>(kChunkFrames) * kMaxStreamChannels) {}

void Mixer::send(const Command& c) {
  c.stream->last_command = ++sent_;
  flush_deferred();  // order: what waits goes first
  if (deferred_.empty() && commands_.push_one(c)) return;
  deferred_.push_back(c);
  ++deferred_total_;
}

void Mixer::flush_deferred() {
  while (!deferred_.empty() && commands_.push_one(deferred_.front())) deferred_.pop_front();
}

void Mixer::add(PlayoutStream* s, const Route& route, float gain) {
  s->routes[0] = route;  // published by the ring push (release); the audio thread selects slot 0
  s->loop_route_slot = 0;
  s->routes_sent = s->route_acks.load(std::memory_order_acquire);
  send({Command::Kind::add, s, 0, gain, 0});
}
void Mixer::add(PlayoutStream* s) {
  add(s, Route::standard(s->channels, channels_));
}

void Mixer::remove(PlayoutStream* s, frames_t at) {
  send({Command::Kind::remove, s, at, 0.0f, 0});
}

void Mixer::set_gain(PlayoutStream* s, float gain, frames_t at) {
  send({Command::Kind::gain, s, at, std::max(0.0f, gain), 0});
}

bool Mixer::set_route(PlayoutStream* s, const Route& route, frames_t at) {
  if (s->route_acks.load(std::memory_order_acquire) != s->routes_sent)
    return false;  // one in flight
  const int slot = 1 - s->loop_route_slot;
  s->routes[static_cast<std::size_t>(slot)] = route;
  send({Command::Kind::route, s, at, 0.0f, slot});
  s->loop_route_slot = slot;
  ++s->routes_sent;
  return true;
}

PlayoutStream* Mixer::take_retired() noexcept {
  PlayoutStream* s = nullptr;
  return retired_.pop_one(s) ? s : nullptr;
}

bool Mixer::releasable(const PlayoutStream& s) const noexcept {
  return s.detached.load(std::memory_order_acquire) &&
         applied_.load(std::memory_order_acquire) >= s.last_command;
}

void Mixer::apply_commands() noexcept {
  Command c{};
  std::uint64_t consumed = 0;
  while (commands_.pop_one(c)) {
    ++consumed;
    PlayoutStream& s = *c.stream;
    if (c.kind == Command::Kind::add) {
      if (s.mixing) continue;  // rule 4
      if (n_active_ < active_.size()) {
        active_[n_active_++] = &s;
        s.mixing = true;
        // A stream may come back after a detach: nothing of its last life carries over.
        s.detached.store(false, std::memory_order_relaxed);
        s.in_underrun = false;
        s.route_slot = 0;
        s.leave_at = s.pending_gain_at = s.pending_route_at = s.route_switch_at = -1;
        s.user_gain = {c.value, c.value, 0, 0};
        s.fade = ramp_ > 0 ? GainRamp{0.0f, 1.0f, s.start_frame, ramp_} : GainRamp{};
      } else {
        refused_.fetch_add(1, std::memory_order_relaxed);
        s.detached.store(true, std::memory_order_release);
        retired_.push_one(&s);  // best effort: the loop needs only releasable()
      }
      continue;
    }
    if (!s.mixing) continue;  // rule 4: refused or detached; its memory is still ours (rule 3)
    switch (c.kind) {
      case Command::Kind::remove:
        s.leave_at = std::max(c.at, frame_);
        break;
      case Command::Kind::gain:
        s.pending_gain_at = std::max(c.at, frame_);
        s.pending_gain = c.value;
        break;
      case Command::Kind::route:
        s.pending_route_at = std::max(c.at, frame_);
        s.pending_route_slot = c.slot;
        break;
      case Command::Kind::add:
        break;
    }
  }
  if (consumed > 0) applied_.fetch_add(consumed, std::memory_order_release);
}

void Mixer::start_due_changes(PlayoutStream& s, frames_t frame) noexcept {
  if (s.leave_at >= 0 && s.leave_at <= frame) {
    // Leaving: fade out from there (unless a route fade already goes to 0); no route switch.
    if (s.fade.to != 0.0f) s.fade = {s.fade.at(s.leave_at), 0.0f, s.leave_at, ramp_};
    s.pending_route_at = -1;
    s.route_switch_at = -1;
  }
  if (s.pending_gain_at >= 0 && s.pending_gain_at <= frame) {
    const frames_t at = s.pending_gain_at;
    s.user_gain = {s.user_gain.at(at), s.pending_gain, at, ramp_};
    s.pending_gain_at = -1;
  }
  if (s.pending_route_at >= 0 && s.pending_route_at <= frame) {
    const frames_t at = s.pending_route_at;
    s.fade = {s.fade.at(at), 0.0f, at, ramp_};
    s.route_switch_at = at + ramp_;
    s.pending_route_at = -1;
  }
  if (s.route_switch_at >= 0 && s.route_switch_at <= frame) {
    const frames_t at = s.route_switch_at;
    s.route_slot = s.pending_route_slot;
    s.fade = ramp_ > 0 ? GainRamp{0.0f, 1.0f, at, ramp_} : GainRamp{};
    s.route_switch_at = -1;
    s.route_acks.fetch_add(1, std::memory_order_release);
  }
}

bool Mixer::left(const PlayoutStream& s, frames_t frame) const noexcept {
  return s.leave_at >= 0 && frame >= s.leave_at + ramp_;
}

void Mixer::mix_frames(PlayoutStream& s, const float* src, float* dst, frames_t from,
                       frames_t got) noexcept {
  const int ch = s.channels;
  frames_t f = 0;
  while (f < got) {
    const frames_t frame = from + f;
    start_due_changes(s, frame);
    if (left(s, frame)) return;  // faded out: the rest stays silent
    // The segment runs to the next change.
    frames_t end = from + got;
    for (frames_t e : {s.pending_gain_at, s.pending_route_at, s.route_switch_at, s.leave_at})
      if (e > frame) end = std::min(end, e);
    const Route& r = s.routes[static_cast<std::size_t>(s.route_slot)];
    std::array<float, Route::kMaxTaps> gw{};
    if (s.user_gain.flat(frame, end) && s.fade.flat(frame, end)) {
      const float g = s.user_gain.at(frame) * s.fade.at(frame);
      for (int t = 0; t < r.taps; ++t)
        gw[static_cast<std::size_t>(t)] = g * r.weight[static_cast<std::size_t>(t)];
      float* o = dst + (frame - from) * channels_;
      const float* i = src + (frame - from) * ch;
      const frames_t n = end - frame;
      if (r.taps == 1) {
        // One tap (a mono source on one channel: a call's side; the common case by far): a
        // strided multiply-add the compiler keeps in registers.
        const float w = gw[0];
        const int d = r.dst[0], c = r.src[0];
        if (ch == 1 && channels_ == 2) {  // constant strides: vectorised
          float* od = o + d;
          for (frames_t k = 0; k < n; ++k) od[2 * k] += w * i[k];
        } else {
          for (frames_t k = 0; k < n; ++k) o[k * channels_ + d] += w * i[k * ch + c];
        }
      } else {
        for (frames_t k = 0; k < n; ++k, o += channels_, i += ch)
          for (int t = 0; t < r.taps; ++t)
            o[r.dst[static_cast<std::size_t>(t)]] +=
                gw[static_cast<std::size_t>(t)] * i[r.src[static_cast<std::size_t>(t)]];
      }
    } else {
      for (frames_t k = frame; k < end; ++k) {
        const float g = s.user_gain.at(k) * s.fade.at(k);
        float* o = dst + (k - from) * channels_;
        const float* i = src + (k - from) * ch;
        for (int t = 0; t < r.taps; ++t)
          o[r.dst[static_cast<std::size_t>(t)]] +=
              g * r.weight[static_cast<std::size_t>(t)] * i[r.src[static_cast<std::size_t>(t)]];
      }
    }
    f = end - from;
  }
}

void Mixer::mix_stream(PlayoutStream& s, float* out, frames_t n) noexcept {
  const int ch = s.channels;
  const frames_t first = frame_ - s.start_frame;          // ring frame for device frame F
  if (first + n <= 0) return;                             // not started yet
  const frames_t offset = std::max<frames_t>(0, -first);  // block frame where the stream begins
  const frames_t want_from = std::max<frames_t>(0, first);
  frames_t want = n - offset;

  // Skip frames that belong to the past (written after their device frame went by).
  const auto read_frame = static_cast<frames_t>(s.ring.read_count()) / ch;
  if (read_frame < want_from) {
    const auto skipped = s.ring.skip(static_cast<std::size_t>(want_from - read_frame) * ch) / ch;
    s.frames_skipped.fetch_add(skipped, std::memory_order_relaxed);
  }

  frames_t block_pos = offset;
  frames_t got_total = 0;
  while (want > 0) {
    // The scratch holds kChunkFrames frames of 8 channels: fewer frames of a wider stream.
    const frames_t chunk =
        std::min({want, kChunkFrames, static_cast<frames_t>(scratch_.size()) / ch});
    const auto got = static_cast<frames_t>(
        s.ring.pop(scratch_.data(), static_cast<std::size_t>(chunk * ch)) / ch);
    mix_frames(s, scratch_.data(), out + block_pos * channels_, frame_ + block_pos, got);
    got_total += got;
    block_pos += got;
    want -= got;
    if (got < chunk) break;
  }
  s.frames_played.fetch_add(static_cast<std::uint64_t>(got_total), std::memory_order_relaxed);
  if (want > 0 && !(s.leave_at >= 0 && frame_ + block_pos >= s.leave_at)) {
    // The rest of the block stays zero: underrun (not counted once the stream is leaving).
    s.underrun_frames.fetch_add(static_cast<std::uint64_t>(want), std::memory_order_relaxed);
    if (!s.in_underrun) s.underrun_events.fetch_add(1, std::memory_order_relaxed);
    s.in_underrun = true;
  } else {
    s.in_underrun = false;
  }
}

void Mixer::detach(std::size_t index) noexcept {
  PlayoutStream* s = active_[index];
  active_[index] = active_[--n_active_];
  s->mixing = false;
  s->detached.store(true, std::memory_order_release);
  retired_.push_one(s);  // sized to hold every stream: cannot fail
}

void Mixer::process(float* out, frames_t n, const BlockTiming& t) noexcept {
  if (resume_pending_) {
    const double elapsed_s = resume_rate_ > 0 ? std::max(0.0, t.current_time - resume_time_s_) : 0;
    frame_ = std::max(
        frame_, resume_frame_ + static_cast<frames_t>(std::llround(elapsed_s * resume_rate_)));
    resume_pending_ = false;
  }
  apply_commands();
  std::fill_n(out, n * channels_, 0.0f);
  for (std::size_t i = 0; i < n_active_;) {
    PlayoutStream& s = *active_[i];
    mix_stream(s, out, n);
    if (left(s, frame_ + n)) {
      detach(i);  // the last stream moved into slot i
      continue;
    }
    ++i;
  }
  // Headroom: a hot or misdecoded mix is clipped at full scale (a sample beyond it would wrap
  // around in an integer device format, and a float device passes it on to the speakers).
  std::uint64_t clipped = 0;
  for (float* x = out; x != out + n * channels_; ++x) {
    const float v = *x;
    if (v >= -1.0f && v <= 1.0f) continue;  // false for NaN too
    *x = v > 1.0f ? 1.0f : (v < -1.0f ? -1.0f : 0.0f);
    ++clipped;
  }
  if (clipped > 0) clipped_.fetch_add(clipped, std::memory_order_relaxed);
  if (t.xrun) xruns_.fetch_add(1, std::memory_order_relaxed);
  ++callbacks_;
  publish({frame_, n, t.current_time, t.dac_time, callbacks_});
  frame_ += n;
}

void Mixer::publish(const DevicePosition& p) noexcept {
  // Seqlock without fences (TSan cannot model fences): each field is a release store, so a
  // reader whose acquire load sees a new field value also sees the odd sequence number stored
  // before it, and retries.
  const std::uint32_t s = pos_seq_.load(std::memory_order_relaxed);
  pos_seq_.store(s + 1, std::memory_order_relaxed);
  pos_frame_.store(p.frame, std::memory_order_release);
  pos_block_.store(p.block_frames, std::memory_order_release);
  pos_current_.store(p.current_time, std::memory_order_release);
  pos_dac_.store(p.dac_time, std::memory_order_release);
  pos_callbacks_.store(p.callbacks, std::memory_order_release);
  pos_seq_.store(s + 2, std::memory_order_release);
}

DevicePosition Mixer::position() const noexcept {
  DevicePosition p;
  for (;;) {
    const std::uint32_t s1 = pos_seq_.load(std::memory_order_acquire);
    if (s1 & 1u) continue;
    // Acquire loads keep the second sequence load after them (see publish()).
    p.frame = pos_frame_.load(std::memory_order_acquire);
    p.block_frames = pos_block_.load(std::memory_order_acquire);
    p.current_time = pos_current_.load(std::memory_order_acquire);
    p.dac_time = pos_dac_.load(std::memory_order_acquire);
    p.callbacks = pos_callbacks_.load(std::memory_order_acquire);
    if (pos_seq_.load(std::memory_order_relaxed) == s1) return p;
  }
}

}  // namespace rtpnode
