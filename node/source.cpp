#include "node/source.hpp"

#include <speex/speex_resampler.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>

namespace rtpnode {

namespace {

JitterBufferConfig jb_config(const PayloadFormat& f) {
  JitterBufferConfig c;
  c.clock_rate = f.clock_rate;
  c.capacity_packets = 256;
  c.max_payload_bytes = std::max<std::size_t>(f.max_payload_bytes(kMaxPtimeMs), 1500);
  return c;
}

/// Ring capacity: the playout delay, the render lead, two of the longest packets and 200 ms of
/// slack for a late loop thread, at the device rate.
std::size_t ring_frames(const Source::Params& p) {
  const double seconds = std::chrono::duration<double>(p.latency).count() + 2.0 * kMaxPtimeMs / 1000.0 + 0.2;
  return std::bit_ceil(static_cast<std::size_t>(seconds * p.device_rate) + static_cast<std::size_t>(p.lead_frames));
}

}  // namespace

Source::Source(const Params& p, mono_ns_t first_arrival, const DeviceClock& clock)
    : p_(p),
      decoder_(make_decoder(p.format)),
      jb_(jb_config(p.format)),
      dev_rate_(std::llround(p.device_rate)),
      max_conceal_frames_(frames_t{p.format.audio_rate} * kMaxConcealMs / 1000) {
  const frames_t start = clock.frame_at(first_arrival + p.latency.count()) + p.lead_frames;
  stream_ = std::make_unique<PlayoutStream>(p.id, p.format.channels, ring_frames(p), start);
  const std::size_t max_in = std::size_t{p.format.audio_rate} * kMaxPtimeMs / 1000 * p.format.channels;
  decode_buf_.resize(max_in);
  if (static_cast<std::int64_t>(p.format.audio_rate) != dev_rate_) {
    int err = 0;
    resampler_ = speex_resampler_init(p.format.channels, p.format.audio_rate,
                                      static_cast<spx_uint32_t>(dev_rate_), p.resampler_quality, &err);
    if (!resampler_ || err != RESAMPLER_ERR_SUCCESS)
      throw std::runtime_error(std::string("speex_resampler_init: ") + speex_resampler_strerror(err));
    // Start without the filter's leading zeros, so output frame k matches input time k.
    speex_resampler_skip_zeros(resampler_);
    resampler_delay_ = speex_resampler_get_output_latency(resampler_);
    resample_buf_.resize(static_cast<std::size_t>(device_frames_for(static_cast<frames_t>(max_in)) + 64) *
                         p.format.channels);
  }
  stats_.ssrc = p.ssrc;
  stats_.port = p.port;
  stats_.remote = p.remote;
  stats_.payload_type = p.raw ? 255 : p.payload_type;
  stats_.payload = p.format.describe();
  stats_.playout_delay_ms = std::chrono::duration<double, std::milli>(p.latency).count();
}

Source::~Source() {
  if (resampler_) speex_resampler_destroy(resampler_);
}

frames_t Source::device_frames_for(frames_t audio_frames) const noexcept {
  return rescale_floor(audio_frames, p_.format.audio_rate, dev_rate_) + 1;
}

ext_ts_t Source::ts_at_frame(frames_t device_frame) const noexcept {
  const frames_t k = device_frame - stream_->start_frame - anchor_k_;
  return anchor_ts_ + rescale_floor(k, dev_rate_, p_.format.clock_rate);
}

void Source::anchor(ext_ts_t ts, mono_ns_t arrival, const DeviceClock& clock) {
  // The ring cannot go back: a resync that wants an earlier frame than what is written plays at
  // once instead.
  const frames_t want_k = clock.frame_at(arrival + p_.latency.count()) + p_.lead_frames - stream_->start_frame;
  const frames_t written = stream_->written_frames() + pending_silence_;
  anchor_k_ = std::max(want_k, written);
  pending_silence_ += anchor_k_ - written;
  anchor_ts_ = ts;
}

void Source::update_jitter(ext_ts_t ts, mono_ns_t arrival) {
  // RFC 3550 §6.4.1 / A.8: J += (|D| - J) / 16, with transit = arrival - timestamp in ticks.
  const double transit = static_cast<double>(arrival) * 1e-9 * p_.format.clock_rate - static_cast<double>(ts);
  if (have_transit_) {
    const double d = std::fabs(transit - last_transit_);
    jitter_ticks_ += (d - jitter_ticks_) / 16.0;
  }
  have_transit_ = true;
  last_transit_ = transit;
}

void Source::insert(ext_seq_t seq, ext_ts_t ts, bool marker, std::span<const std::uint8_t> payload,
                    mono_ns_t arrival, const DeviceClock& clock) {
  last_arrival_ = arrival;
  if (!jb_.started() && jb_.counters().resyncs == 0 && stats_.packets_received == 0) {
    anchor_ts_ = ts;  // start_frame was computed from this packet's arrival
    base_seq_ = highest_seq_ = seq;
  }
  const frames_t horizon = clock.frame_at(arrival) + p_.lead_frames;
  auto r = jb_.insert(seq, ts, marker, payload, arrival, ts_at_frame(horizon));
  if (r == InsertResult::resync) {
    // Fold the finished run into the RFC 3550 counters, then start over from this packet.
    expected_prior_ += highest_seq_ - base_seq_ + 1;
    base_seq_ = highest_seq_ = seq;
    jb_.reset();
    ++stats_.resyncs;
    anchor(ts, arrival, clock);
    r = jb_.insert(seq, ts, marker, payload, arrival, ts);
  }
  if (r == InsertResult::duplicate) return;
  ++stats_.packets_received;
  highest_seq_ = std::max(highest_seq_, seq);
  if (r == InsertResult::too_large) ++stats_.packets_malformed;
  update_jitter(ts, arrival);
}

void Source::on_rtp(const RtpHeaderView& h, mono_ns_t arrival, const DeviceClock& clock) {
  const ext_seq_t seq = seq_unwrap_.unwrap(h.sequence_number);
  const ext_ts_t ts = ts_unwrap_.unwrap(h.timestamp);
  if (h.payload_type != p_.payload_type) {
    // Same stream, other format (e.g. comfort noise, PT 13): it counts for loss accounting but
    // is not played (issue #3 handles CN and payload changes).
    ++stats_.packets_other_pt;
    ++stats_.packets_received;
      highest_seq_ = std::max(highest_seq_, seq);
    return;
  }
  insert(seq, ts, h.marker, h.payload, arrival, clock);
}

void Source::on_raw(std::span<const std::uint8_t> payload, mono_ns_t arrival, const DeviceClock& clock) {
  const int frames = decoder_->frames_in(payload);
  if (frames <= 0) {
    ++stats_.packets_malformed;
    return;
  }
  const ext_seq_t seq = raw_seq_++;
  const ext_ts_t ts = raw_ts_;
  raw_ts_ += frames;
  insert(seq, ts, false, payload, arrival, clock);
}

void Source::push(frames_t frames) {
  const int ch = p_.format.channels;
  if (!resampler_) {
    stream_->ring.push(decode_buf_.data(), static_cast<std::size_t>(frames * ch));
    return;
  }
  auto in_len = static_cast<spx_uint32_t>(frames);
  auto out_len = static_cast<spx_uint32_t>(resample_buf_.size() / ch);
  speex_resampler_process_interleaved_float(resampler_, decode_buf_.data(), &in_len, resample_buf_.data(), &out_len);
  stream_->ring.push(resample_buf_.data(), std::size_t{out_len} * ch);
}

void Source::render(const DeviceClock& clock, mono_ns_t now) {
  const int ch = p_.format.channels;
  const double ticks_to_frames = p_.format.frames_per_tick();
  const frames_t max_chunk = frames_t{p_.format.audio_rate} * kMaxPtimeMs / 1000;

  while (pending_silence_ > 0) {
    const frames_t n = std::min(pending_silence_, stream_->free_frames());
    if (n <= 0) return;
    for (frames_t done = 0; done < n;) {
      const frames_t chunk = std::min<frames_t>(n - done, static_cast<frames_t>(decode_buf_.size()) / ch);
      std::fill_n(decode_buf_.data(), chunk * ch, 0.0f);
      stream_->ring.push(decode_buf_.data(), static_cast<std::size_t>(chunk * ch));
      done += chunk;
    }
    pending_silence_ -= n;
  }

  // The resampler holds back resampler_delay_ output frames: render that much further in
  // source time so the ring itself reaches the horizon.
  const ext_ts_t horizon_ts = ts_at_frame(clock.frame_at(now) + p_.lead_frames + resampler_delay_);
  for (;;) {
    auto a = jb_.next(horizon_ts);
    if (a.kind == JitterBuffer::Action::Kind::wait) return;
    if (a.kind == JitterBuffer::Action::Kind::decode) {
      const int expect = decoder_->frames_in(a.packet->payload());
      if (stream_->free_frames() < device_frames_for(expect > 0 ? expect : max_chunk) + 2) return;
      const int n = decoder_->decode(a.packet->payload(), decode_buf_);
      if (n < 0) {
        ++stats_.packets_malformed;
        jb_.discard(a);
        continue;
      }
      // Measured receiver delay: from arrival to the DAC time of the packet's first frame.
      const frames_t k = stream_->written_frames();
      const mono_ns_t dac = clock.time_of(stream_->start_frame + k) +
                            frames_to_ns(clock.output_latency_frames(), dev_rate_);
      const auto delay = static_cast<double>(dac - a.packet->arrival_ns);
      arrival_to_dac_ns_ = have_delay_ ? arrival_to_dac_ns_ + 0.05 * (delay - arrival_to_dac_ns_) : delay;
      have_delay_ = true;
      push(n);
      concealing_ = false;
      conceal_run_frames_ = 0;
      jb_.played(a, static_cast<ext_ts_t>(std::llround(n / ticks_to_frames)));
      continue;
    }
    // Concealment or gap: at most one packet-length chunk at a time.
    const frames_t frames = std::min<frames_t>(static_cast<frames_t>(std::llround(a.ticks * ticks_to_frames)), max_chunk);
    if (frames <= 0 || stream_->free_frames() < device_frames_for(frames) + 2) return;
    const bool missing = a.kind == JitterBuffer::Action::Kind::conceal;
    // Concealment extrapolates for at most kMaxConcealMs in a row; past that the stream has
    // stalled or ended, and silence (not counted as concealment) is played until it resumes.
    const bool give_up = missing && conceal_run_frames_ >= max_conceal_frames_;
    const bool plc = (missing && !give_up) || (!missing && p_.format.codec == Codec::opus);
    if (plc) decoder_->conceal(static_cast<int>(frames), decode_buf_);
    else std::fill_n(decode_buf_.data(), frames * ch, 0.0f);
    if (give_up) {
      stats_.frames_silent += static_cast<std::uint64_t>(frames);
    } else if (missing) {
      stats_.frames_concealed += static_cast<std::uint64_t>(frames);
      if (!concealing_) ++stats_.concealment_events;
      concealing_ = true;
      conceal_run_frames_ += frames;
    } else {
      stats_.frames_gap += static_cast<std::uint64_t>(frames);
    }
    push(frames);
    jb_.played(a, static_cast<ext_ts_t>(std::llround(frames / ticks_to_frames)));
  }
}

SourceStats Source::stats() const {
  SourceStats s = stats_;
  const std::int64_t expected = expected_prior_ + (highest_seq_ - base_seq_ + 1);
  s.packets_lost = std::max<std::int64_t>(0, expected - static_cast<std::int64_t>(s.packets_received));
  s.packets_late = jb_.counters().late;
  s.packets_duplicate = jb_.counters().duplicate;
  s.packets_overflow = jb_.counters().overflow;
  s.underruns = stream_->underrun_events.load(std::memory_order_relaxed);
  s.underrun_frames = stream_->underrun_frames.load(std::memory_order_relaxed);
  s.frames_played = stream_->frames_played.load(std::memory_order_relaxed);
  s.frames_skipped = stream_->frames_skipped.load(std::memory_order_relaxed);
  s.jitter_ms = jitter_ticks_ * 1000.0 / p_.format.clock_rate;
  s.arrival_to_dac_ms = arrival_to_dac_ns_ / 1e6;
  const frames_t queued = stream_->written_frames() - static_cast<frames_t>(stream_->ring.read_count()) / p_.format.channels;
  s.buffered_ms = static_cast<double>(queued) * 1000.0 / static_cast<double>(dev_rate_);
  return s;
}

}  // namespace rtpnode
