#include "node/drift_resampler.hpp"

#include <speex/speex_resampler.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "node/resampler_ratio.hpp"

namespace rtpnode {

namespace {

void check(int err, const char* what) {
  if (err != RESAMPLER_ERR_SUCCESS)
    throw std::runtime_error(std::string(what) + ": " + speex_resampler_strerror(err));
}

/// A numerator that is a multiple of the prime denominator would make speexdsp reduce the
/// ratio (and truncate its phase): the next one up or down instead.
std::uint32_t avoid_multiple(std::uint32_t num, bool up) {
  if (num % kSpeexRatioDen != 0) return num;
  return up ? num + 1 : num - 1;
}

}  // namespace

DriftResampler::DriftResampler(std::uint32_t audio_rate, std::int64_t device_rate, int channels,
                               int quality, bool varies, frames_t max_in_frames, bool bypass)
    : audio_rate_(audio_rate),
      device_rate_(device_rate),
      channels_(channels),
      varies_(varies),
      bypass_(bypass && varies && static_cast<std::int64_t>(audio_rate) == device_rate) {
  if (static_cast<std::int64_t>(audio_rate) == device_rate && !varies) return;
  int err = 0;
  const auto dev = static_cast<spx_uint32_t>(device_rate);
  if (varies) {
    ideal_num_ = kSpeexRatioDen * static_cast<double>(audio_rate) / static_cast<double>(dev);
    const auto num = avoid_multiple(static_cast<std::uint32_t>(std::llround(ideal_num_)), true);
    state_ = speex_resampler_init_frac(static_cast<spx_uint32_t>(channels), num, kSpeexRatioDen,
                                       audio_rate, dev, quality, &err);
  } else {
    state_ =
        speex_resampler_init(static_cast<spx_uint32_t>(channels), audio_rate, dev, quality, &err);
  }
  if (!state_) check(err == RESAMPLER_ERR_SUCCESS ? RESAMPLER_ERR_ALLOC_FAILED : err, "speexdsp");
  check(err, "speex_resampler_init");
  spx_uint32_t n = 1, d = 1;
  speex_resampler_get_ratio(state_, &n, &d);
  num_ = n;
  den_ = d;
  // Start without the filter's leading zeros, so output frame k matches input time k.
  speex_resampler_skip_zeros(state_);
  // Room for the longest input at the slowest speed.
  const frames_t max_out = rescale_floor(max_in_frames, audio_rate, device_rate) + 1;
  out_.resize(static_cast<std::size_t>(max_out * 102 / 100 + 64) *
              static_cast<std::size_t>(channels));
  if (bypass_) init_bypass();
}

void DriftResampler::init_bypass() {
  // How many frames the filter holds back at ratio 1/1 (its input latency, half the filter
  // length), measured rather than assumed: pass must hold back exactly as many, and priming
  // relies on it.
  const auto ch = static_cast<std::size_t>(channels_);
  const auto probe = static_cast<spx_uint32_t>(
      4 * std::max<spx_int32_t>(speex_resampler_get_input_latency(state_), 8));
  std::vector<float> zeros(probe * ch, 0.0f), sink(probe * ch);
  speex_resampler_set_rate_frac(state_, kSpeexRatioDen, kSpeexRatioDen, audio_rate_,
                                static_cast<spx_uint32_t>(device_rate_));
  speex_resampler_reset_mem(state_);
  speex_resampler_skip_zeros(state_);
  spx_uint32_t in_len = probe, out_len = probe;
  speex_resampler_process_interleaved_float(state_, zeros.data(), &in_len, sink.data(), &out_len);
  if (in_len != probe || out_len >= probe)
    throw std::runtime_error("speexdsp: unexpected latency at ratio 1/1");
  hold_ = static_cast<frames_t>(probe - out_len);
  history_ = hold_ + 2;
  // The history, what pass holds, one input, and what a faster filter holds (longer filter).
  line_.resize(static_cast<std::size_t>(history_ + 2 * hold_ + kLineChunk + 64) * ch);
  prime_out_.resize(static_cast<std::size_t>(history_ + 2 * hold_ + kLineChunk + 64) * ch);
  // Slips move the position by kSlipSpeed per output frame.
  slip_step_ = static_cast<std::uint32_t>(std::llround(kSlipSpeed * kSpeexRatioDen));
  den_ = kSpeexRatioDen;
  num_ = kSpeexRatioDen;
  ideal_num_ = kSpeexRatioDen;
  mode_ = Mode::pass;
}

DriftResampler::~DriftResampler() {
  if (state_) speex_resampler_destroy(state_);
}

double DriftResampler::landing() const noexcept {
  if (bypass_)
    return static_cast<double>((fed_ - pos_int_) * den_ - pos_frac_) /
           (mode_ == Mode::pass ? den_ : num_);
  if (!state_) return 0.0;
  return static_cast<double>(in_total_ * den_ - pos_num_) / num_;
}

void DriftResampler::set_speed(double speed) noexcept {
  if (!state_ || !varies_) return;
  speed_ = speed;
  ideal_num_ =
      kSpeexRatioDen * static_cast<double>(audio_rate_) * speed / static_cast<double>(device_rate_);
  // Bypass: pass and slips keep their ratio; the request only moves the position error.
  if (!bypass_ || mode_ == Mode::follow) choose_num();
}

void DriftResampler::choose_num() noexcept {
  // Dither between the two numerators around the requested one: the step below while ahead
  // (more input consumed than the requested speed would have), the step above while behind.
  const double threshold_in = kDitherThreshold * ideal_num_ / den_;
  const auto lo = static_cast<std::uint32_t>(std::floor(ideal_num_));
  const std::uint32_t below = avoid_multiple(lo, false);
  const std::uint32_t above = avoid_multiple(lo + 1, true);
  // Within the threshold the numerator stays, even when the request has moved off it (a delay
  // trim or the sync loop moves the speed a little at every render): the position error is what
  // is bounded, and every change rebuilds speexdsp's filter table (thousands of sin() calls; at
  // every render, the filter cost 20 times the decode of a G.711 stream during trims).
  std::uint32_t num = num_;
  if (excess_in_ > threshold_in) num = below;
  if (excess_in_ < -threshold_in) num = above;
  apply_num(num);
}

void DriftResampler::apply_num(std::uint32_t num) noexcept {
  if (num == num_) return;
  // The denominator stays kSpeexRatioDen (prime, num never a multiple): speexdsp keeps its phase
  // as is, and so does pos_num_.
  speex_resampler_set_rate_frac(state_, num, kSpeexRatioDen, audio_rate_,
                                static_cast<spx_uint32_t>(device_rate_));
  num_ = num;
  ++ratio_changes_;
}

void DriftResampler::reset() noexcept {
  if (bypass_) {
    // The filter is primed when it is next needed.
    mode_ = Mode::pass;
    line_base_ = fed_ = spx_fed_ = pos_int_ = pos_frac_ = 0;
    slip_left_ = 0;
    primed_ = false;
    excess_in_ = 0.0;
    return;
  }
  if (state_) {
    speex_resampler_reset_mem(state_);
    speex_resampler_skip_zeros(state_);
  }
  primed_ = false;
  in_total_ = 0;
  pos_num_ = 0;
  excess_in_ = 0.0;
}

std::span<const float> DriftResampler::process(std::span<const float> in,
                                               frames_t frames) noexcept {
  const auto samples = static_cast<std::size_t>(frames) * static_cast<std::size_t>(channels_);
  if (!state_) return in.first(samples);
  if (bypass_) return process_bypass(in, frames);
  auto in_len = static_cast<spx_uint32_t>(frames);
  auto out_len = static_cast<spx_uint32_t>(out_.size() / static_cast<std::size_t>(channels_));
  speex_resampler_process_interleaved_float(state_, in.data(), &in_len, out_.data(), &out_len);
  primed_ = true;
  in_total_ += in_len;
  pos_num_ += static_cast<std::int64_t>(out_len) * num_;
  if (varies_) {
    excess_in_ += static_cast<double>(out_len) * (static_cast<double>(num_) - ideal_num_) / den_;
    choose_num();  // now, so that landing() uses the ratio the next input plays at
  }
  // Keep the sums small: drop whole input frames already passed.
  const std::int64_t whole = pos_num_ / den_;
  in_total_ -= whole;
  pos_num_ -= whole * den_;
  filtered_frames_ += out_len;
  return {out_.data(), std::size_t{out_len} * static_cast<std::size_t>(channels_)};
}

void DriftResampler::advance(std::int64_t out_frames) noexcept {
  const std::uint32_t num = mode_ == Mode::pass ? den_ : num_;
  pos_frac_ += out_frames * num;
  pos_int_ += pos_frac_ / den_;
  pos_frac_ %= den_;
  excess_in_ += static_cast<double>(out_frames) * (static_cast<double>(num) - ideal_num_) / den_;
}

void DriftResampler::prime() noexcept {
  // Restart the filter on the input it would have seen: `history_` frames before the position
  // (already output) and the `hold_` frames pass held back. At ratio 1/1 it outputs exactly the
  // history (init_bypass measured hold_), which is dropped; its phase is 0 at the position.
  const auto ch = static_cast<std::size_t>(channels_);
  const std::int64_t start = std::max(line_base_, pos_int_ - history_);
  speex_resampler_set_rate_frac(state_, den_, den_, audio_rate_,
                                static_cast<spx_uint32_t>(device_rate_));
  speex_resampler_reset_mem(state_);
  speex_resampler_skip_zeros(state_);
  auto in_len = static_cast<spx_uint32_t>(fed_ - start);
  // Into its own scratch: this call's output so far is in out_.
  auto out_len = static_cast<spx_uint32_t>(prime_out_.size() / ch);
  if (in_len > 0)
    speex_resampler_process_interleaved_float(
        state_, line_.data() + static_cast<std::size_t>(start - line_base_) * ch, &in_len,
        prime_out_.data(), &out_len);
  spx_fed_ = fed_;
  num_ = den_;  // what speexdsp has now (reduced to 1/1)
  primed_ = true;
}

void DriftResampler::start_slip(std::int64_t k) noexcept {
  // Land on input position pos_int_ + k (relative to where pass would be after the slip): at
  // 1 + s * kSlipSpeed the position gains s * slip_step_ / den_ per output frame over pass, so
  // after L frames its offset from pass is pos_frac_ + s * L * slip_step_; L is chosen so that
  // it ends in [k * den_, k * den_ + slip_step_): a remainder below one step, then dropped.
  const std::int64_t goal = k * den_;
  const std::int64_t d = slip_step_;
  if (goal == pos_frac_) {
    mode_ = Mode::pass;
    return;
  }
  const bool up = goal > pos_frac_;
  slip_left_ = up ? (goal - pos_frac_ + d - 1) / d : (pos_frac_ - goal) / d;
  apply_num(up ? den_ + slip_step_ : den_ - slip_step_);
  mode_ = Mode::slip;
}

void DriftResampler::decide_mode() noexcept {
  const double offset = std::abs(ideal_num_ / den_ - 1.0);
  switch (mode_) {
    case Mode::pass:
      if (offset > kBypassMaxOffset || !bypass_allowed_) {
        prime();
        mode_ = Mode::follow;
        choose_num();
      } else if (std::abs(excess_in_) > kSlipThreshold) {
        prime();
        ++slips_;
        start_slip(excess_in_ > 0 ? -1 : 1);
      }
      break;
    case Mode::follow:
      if (offset < 0.8 * kBypassMaxOffset && bypass_allowed_) {
        // To the whole position nearest the requested one.
        const double wanted = static_cast<double>(pos_frac_) / den_ - excess_in_;
        ++slips_;
        start_slip(std::llround(wanted));
      }
      break;
    case Mode::slip:
      break;
  }
}

std::span<const float> DriftResampler::process_bypass(std::span<const float> in,
                                                      frames_t frames) noexcept {
  // In chunks of at most kLineChunk frames, so the line holds little more than the filter's
  // length (memory per source, issue #16).
  const auto ch = static_cast<std::size_t>(channels_);
  std::size_t out_n = 0;  // frames
  for (frames_t done = 0; done < frames;) {
    const frames_t n = std::min<frames_t>(frames - done, kLineChunk);
    decide_mode();  // before the chunk goes in: priming uses the frames up to here
    append(in.subspan(static_cast<std::size_t>(done) * ch, static_cast<std::size_t>(n) * ch), n);
    run(out_n);
    done += n;
  }
  return {out_.data(), out_n * ch};
}

void DriftResampler::append(std::span<const float> in, frames_t frames) noexcept {
  const auto ch = static_cast<std::size_t>(channels_);
  const auto cap = static_cast<std::int64_t>(line_.size() / ch);
  // Keep `history_` frames before the position (and whatever the filter has not consumed).
  std::int64_t keep = std::max(line_base_, pos_int_ - history_);
  if (mode_ != Mode::pass) keep = std::min(keep, spx_fed_);
  keep = std::max(keep, fed_ + frames - cap);  // never: the line is sized for the worst case
  if (keep > line_base_) {
    const auto drop = static_cast<std::size_t>(keep - line_base_) * ch;
    const auto kept = static_cast<std::size_t>(fed_ - keep) * ch;
    if (kept > 0) std::memmove(line_.data(), line_.data() + drop, kept * sizeof(float));
    line_base_ = keep;
  }
  std::memcpy(line_.data() + static_cast<std::size_t>(fed_ - line_base_) * ch, in.data(),
              static_cast<std::size_t>(frames) * ch * sizeof(float));
  fed_ += frames;
}

void DriftResampler::run(std::size_t& out_n) noexcept {
  const auto ch = static_cast<std::size_t>(channels_);
  const std::size_t out_cap = out_.size() / ch;
  for (;;) {
    if (mode_ == Mode::pass) {
      const std::int64_t n = std::min<std::int64_t>(fed_ - hold_ - pos_int_,
                                                    static_cast<std::int64_t>(out_cap - out_n));
      if (n > 0) {
        std::memcpy(out_.data() + out_n * ch,
                    line_.data() + static_cast<std::size_t>(pos_int_ - line_base_) * ch,
                    static_cast<std::size_t>(n) * ch * sizeof(float));
        out_n += static_cast<std::size_t>(n);
        advance(n);
        passed_frames_ += static_cast<std::uint64_t>(n);
      }
      return;
    }
    auto in_len = static_cast<spx_uint32_t>(fed_ - spx_fed_);
    std::size_t room = out_cap - out_n;
    if (mode_ == Mode::slip)
      room = std::min<std::size_t>(room, static_cast<std::size_t>(slip_left_));
    auto out_len = static_cast<spx_uint32_t>(room);
    if (out_len > 0)
      speex_resampler_process_interleaved_float(
          state_, line_.data() + static_cast<std::size_t>(spx_fed_ - line_base_) * ch, &in_len,
          out_.data() + out_n * ch, &out_len);
    else
      in_len = 0;
    spx_fed_ += in_len;
    out_n += out_len;
    advance(out_len);
    filtered_frames_ += out_len;
    if (mode_ == Mode::follow) {
      choose_num();
      return;
    }
    slip_left_ -= out_len;
    if (slip_left_ > 0) return;  // the input ran out first: the slip goes on next time
    // Landed: drop the remainder (below one step) and pass on from the whole position.
    excess_in_ -= static_cast<double>(pos_frac_) / den_;
    pos_frac_ = 0;
    mode_ = Mode::pass;
  }
}

}  // namespace rtpnode
