#include "node/source.hpp"

#include "jitter/playout_step.hpp"

#include <algorithm>
#include <bit>
#include <ctime>
#include <limits>
#include <cmath>
#include <stdexcept>
#include <string>

namespace rtpnode {

namespace {

/// Jitter-buffer bounds (issue #16 finding 4), from the codec and the delays: the packets the
/// ring has no room for wait here, compressed, up to their deadline; that is the largest playout
/// delay plus the source's offset plus a second. The payload ceiling is that span at the
/// format's largest bit rate (Opus: 510 kbit/s; PCM: its sample rate), at least 64 kB; the
/// slot count starts at 32 and doubles as needed up to 16384 (a 1 ms sender 16 s ahead).
/// The longest playout delay a source may have: --max-latency when adaptive, the fixed one
/// otherwise (whichever is larger), ns.
mono_ns_t largest_delay_ns(const Source::Params& p) {
  return std::max({p.playout.max_delay_ns, p.playout.start_delay_ns, p.timeline_delay_ns});
}

JitterBufferConfig jb_config(const Source::Params& p) {
  const PayloadFormat& f = p.format;
  JitterBufferConfig c;
  c.clock_rate = f.clock_rate;
  c.capacity_packets = 32;
  c.max_capacity_packets = 16384;
  c.max_payload_bytes = std::max<std::size_t>(f.max_payload_bytes(kMaxPtimeMs), 1500);
  c.expand_ticks = std::max<ext_ts_t>(1, f.clock_rate / 200);  // 5 ms: one render tick
  c.max_stored_bytes = Source::stored_bytes_cap(p);
  return c;
}

/// The rendering thread's scratch buffer of at least `samples` floats (Source::decode_buf_).
/// Thread: any; each thread has its own. Allocates only when a larger size is first asked for.
std::span<float> render_scratch(std::size_t samples) {
  thread_local std::vector<float> buf;
  if (buf.size() < samples) buf.resize(samples);
  return {buf.data(), samples};
}

PlayoutConfig playout_config(const Source::Params& p) {
  PlayoutConfig c = p.playout;
  c.clock_rate = p.format.clock_rate;
  return c;
}

/// Ring capacity: the render lead, the longest packet (120 ms) and 30 ms, at the device rate,
/// rounded up to a power of two (8192 frames, 171 ms, at 48 kHz with a 15 ms lead). The ring
/// holds decoded audio only up to that: audio further ahead (a playout delay or an offset
/// longer than the ring) waits compressed in the jitter buffer and is decoded as the ring
/// drains (issue #16 finding 4: 64 kB for stereo, where holding the whole delay took 1 MB).
/// A delay below about 150 ms is held in the ring whole, as before.
std::size_t ring_frames(const Source::Params& p) {
  const double seconds = kMaxPtimeMs / 1000.0 + 0.03;
  return std::bit_ceil(static_cast<std::size_t>(seconds * p.device_rate) +
                       static_cast<std::size_t>(p.lead_frames));
}

}  // namespace

std::size_t Source::stored_bytes_cap(const Params& p) {
  const PayloadFormat& f = p.format;
  const double held_s = static_cast<double>(largest_delay_ns(p)) * 1e-9 +
                        std::abs(static_cast<double>(p.offset_frames)) / p.device_rate + 1.0;
  const double bytes_per_s =
      static_cast<double>(f.max_payload_bytes(kMaxPtimeMs)) * 1000.0 / kMaxPtimeMs;
  return std::max<std::size_t>(64 * 1024, static_cast<std::size_t>(held_s * bytes_per_s));
}

Source::Source(const Params& p, mono_ns_t first_arrival, const DeviceClock& clock)
    : p_(p),
      decoder_(make_decoder(p.format)),
      jb_(jb_config(p)),
      playout_(playout_config(p)),
      dev_rate_(std::llround(p.device_rate)),
      // Adaptive playout and drift compensation trim the speed, so equal rates go through the
      // filter while the speed is away from 1 (with --resampler-bypass, only then); fixed
      // playout without drift compensation at equal rates passes through.
      resampler_(p.format.audio_rate, dev_rate_, p.format.channels, p.resampler_quality,
                 p.playout.adaptive || p.playout.drift_compensation,
                 static_cast<frames_t>(p.format.audio_rate * kMaxPtimeMs / 1000),
                 p.resampler_bypass),
      concealer_(p.format.audio_rate, p.format.channels),
      sender_clock_(p.format.clock_rate) {
  const mono_ns_t delay = playout_.target_ns(jb_.ptime_ticks());
  const frames_t start = clock.frame_at(first_arrival + delay) + p.lead_frames;
  rings_ = std::make_unique<SourceRings>(
      SourceRings::Settings{p.id, p.format.channels, ring_frames(p), p.mixer, p.device_channels,
                            p.gain_db, p.route},
      start);
  const std::size_t max_in =
      std::size_t{p.format.audio_rate} * kMaxPtimeMs / 1000 * p.format.channels;
  decode_samples_ = max_in;
  stats_.ssrc = p.ssrc;
  stats_.port = p.port;
  stats_.remote = p.remote;
  stats_.session = p.session;
  stats_.payload_type = p.raw ? 255 : p.payload_type;
  stats_.payload = p.format.describe();
  if (p.media_clock) stats_.media_clock = p.media_clock->name();
  stats_.audio_rate = p.format.audio_rate;
  stats_.adaptive = p.playout.adaptive;
}

double Source::next_ring_position() const noexcept {
  return static_cast<double>(rings_->current().written_frames() + pending_silence_) +
         resampler_.landing();
}

frames_t Source::next_ring_frame() const noexcept {
  return static_cast<frames_t>(std::llround(next_ring_position()));
}

void Source::restart_stream(frames_t start_frame, frames_t old_leave_at, frames_t now_frame) {
  rings_->restart(start_frame, old_leave_at, now_frame);
  resampler_.reset();
  pending_silence_ = 0;
}

bool Source::drained() const noexcept {
  return rings_->drained();
}

double Source::queued_ms() const noexcept {
  const frames_t queued =
      next_ring_frame() -
      static_cast<frames_t>(rings_->current().ring.read_count()) / p_.format.channels;
  return static_cast<double>(std::max<frames_t>(0, queued)) * 1000.0 /
         static_cast<double>(dev_rate_);
}

void Source::set_gain_db(double db, const DeviceClock& clock, mono_ns_t now) {
  rings_->set_gain_db(db, clock.frame_at(now));
}

void Source::set_muted(bool muted, const DeviceClock& clock, mono_ns_t now) {
  rings_->set_muted(muted, clock.frame_at(now));
}

bool Source::set_route(std::optional<std::vector<int>> channels, const DeviceClock& clock,
                       mono_ns_t now) {
  return rings_->set_route(std::move(channels), clock.frame_at(now));
}

void Source::flush(const DeviceClock& clock, mono_ns_t now, bool keep_estimates) {
  ++stats_.flushes;
  jb_.reset();
  if (!keep_estimates) playout_.rebase();
  concealer_.reset();
  // Fade out from the next block; a fresh ring waits for the next packet to anchor it.
  restart_stream(std::numeric_limits<frames_t>::max() / 4, clock.frame_at(now),
                 clock.frame_at(now));
  awaiting_anchor_ = true;
}

void Source::leave(frames_t now_frame) {
  if (leaving_) return;
  leaving_ = true;
  // The sender's audio ends at `end`; the leave fade runs over what follows (silence), so the
  // audio itself plays untouched, and no underrun is counted past `end`.
  frames_t end = rings_->current().start_frame + rings_->current().written_frames();
  // A ring parked far ahead (a flush waits for its anchor at max/4; a wrong placement) ends at
  // once; one that holds what a delay and offset allow plays out.
  if (awaiting_anchor_ || end - now_frame > ns_to_frames(max_ahead_ns(), dev_rate_)) end = 0;
  rings_->leave(end);
}

Source::~Source() = default;

mono_ns_t Source::max_ahead_ns() const noexcept {
  return largest_delay_ns(p_) +
         frames_to_ns(std::abs(p_.offset_frames) + static_cast<frames_t>(ring_frames(p_)),
                      dev_rate_);
}

frames_t Source::device_frames_for(frames_t audio_frames) const noexcept {
  return rescale_floor(audio_frames, p_.format.audio_rate, dev_rate_) + 1;
}

mono_ns_t Source::ahead_ns(const DeviceClock& clock, mono_ns_t now) const noexcept {
  const frames_t queued = next_ring_frame();
  const frames_t needed_from = clock.frame_at(now) + p_.lead_frames - rings_->current().start_frame;
  // Saturated at a day: a ring parked far ahead (a flush waits for its anchor at max/4) must not
  // overflow the conversion to ns.
  const frames_t day = dev_rate_ * 86400;
  return frames_to_ns(std::clamp(queued - needed_from, -day, day), dev_rate_);
}

mono_ns_t Source::next_render_ns(const DeviceClock& clock, mono_ns_t now,
                                 mono_ns_t busy_ns) const noexcept {
  if (awaiting_anchor_ || leaving_ || bye_ || pending_silence_ > 0) return now + busy_ns;
  const mono_ns_t ahead = ahead_ns(clock, now);
  mono_ns_t due = ahead > 0 ? now + ahead : now + busy_ns;
  if (p_.raw && !raw_queue_.empty()) due = std::min(due, raw_queue_.front().due);
  return due;
}

void Source::anchor(mono_ns_t arrival, const DeviceClock& clock) {
  // The ring cannot go back: a resync that wants an earlier frame than what is written plays at
  // once instead.
  const mono_ns_t delay = playout_.target_ns(jb_.ptime_ticks());
  const frames_t want_k =
      clock.frame_at(arrival + delay) + p_.lead_frames - rings_->current().start_frame;
  pending_silence_ += std::max<frames_t>(0, want_k - next_ring_frame());
}

void Source::insert(ext_seq_t seq, ext_ts_t ts, bool marker, std::span<const std::uint8_t> payload,
                    mono_ns_t arrival, const DeviceClock& clock, bool comfort_noise) {
  if (last_arrival_ != 0 && arrival > last_arrival_)
    max_gap_ns_ = std::max(max_gap_ns_, arrival - last_arrival_);
  last_arrival_ = arrival;
  // The RFC 3550 jitter after each packet but the first (duplicates too), its maximum and mean
  // over the differences: as Wireshark's RTP stream analysis reports them.
  const double transit = static_cast<double>(arrival) -
                         static_cast<double>(ts) * 1e9 / static_cast<double>(p_.format.clock_rate);
  if (jitter_packets_++ > 0) {
    report_jitter_ns_ += (std::fabs(transit - last_transit_ns_) - report_jitter_ns_) / 16.0;
    jitter_max_ns_ = std::max(jitter_max_ns_, report_jitter_ns_);
    jitter_sum_ns_ += report_jitter_ns_;
  }
  last_transit_ns_ = transit;
  if (!rx_.started() || awaiting_anchor_) {
    // The first packet (or the first after a flush) anchors the ring; synchronised, on the NTP
    // timeline. A ring that has not played yet is simply replaced.
    const frames_t start = anchor_frame(ts, arrival, clock);
    if (awaiting_anchor_ || start != rings_->current().start_frame)
      restart_stream(start, clock.frame_at(arrival), clock.frame_at(arrival));
    awaiting_anchor_ = false;
  }
  if (!rx_.started()) rx_.start(seq);
  auto r = jb_.insert(seq, ts, marker, payload, arrival,
                      playout_horizon(jb_, playout_, ahead_ns(clock, arrival)), comfort_noise);
  if (r == InsertResult::resync) {
    // Fold the finished run into the RFC 3550 counters, then start over from this packet.
    rx_.restart(seq);
    jb_.reset();
    playout_.rebase();
    ++stats_.resyncs;
    anchor(arrival, clock);
    r = jb_.insert(seq, ts, marker, payload, arrival, ts, comfort_noise);
  }
  if (r == InsertResult::duplicate) return;
  if (rx_.on_packet(seq) && r == InsertResult::stored) ++stats_.packets_reordered;
  if (r == InsertResult::full) return;  // counted as overflow by the jitter buffer
  if (r == InsertResult::too_large) {
    ++stats_.packets_malformed;
    return;
  }
  if (!fec_seen_ && !comfort_noise && decoder_->carries_fec(payload)) {
    // The sender uses in-band FEC: keep the next packet in hand at each deadline.
    fec_seen_ = true;
    playout_.set_margin_packets(playout_.config().margin_packets + 1);
  }
  playout_.on_packet(ts, arrival, jb_.ptime_ticks());
}

void Source::on_rtp(const RtpHeaderView& h, mono_ns_t arrival, const DeviceClock& clock) {
  render_requested_ = true;
  const ext_seq_t seq = seq_unwrap_.unwrap(h.sequence_number);
  const ext_ts_t ts = ts_unwrap_.unwrap(h.timestamp);
  if (p_.media_clock && !sender_clock_.has_mapping() && p_.timeline)
    map_media_clock(h.timestamp, ts, arrival);
  if (h.payload_type == kComfortNoisePayloadType && p_.payload_type != kComfortNoisePayloadType) {
    // RFC 3389: the first payload octet is the noise level in -dBov. The silence it describes
    // lasts until the next packet: it plays as a gap, filled with noise at that level.
    // The level is kept with the packet and applies once the audio before it has played.
    ++stats_.packets_comfort_noise;
    insert(seq, ts, h.marker, h.payload.first(std::min<std::size_t>(1, h.payload.size())), arrival,
           clock, true);
    return;
  }
  if (h.payload_type != p_.payload_type) {
    // Same stream, another format: it counts for loss accounting but is not played.
    ++stats_.packets_other_pt;
    (void)rx_.on_packet(seq);
    return;
  }
  check_length(seq, ts, h.payload);
  check_clock_rate(ts, arrival);
  insert(seq, ts, h.marker, h.payload, arrival, clock);
}

void Source::map_media_clock(rtp_ts_t ts, ext_ts_t ext, mono_ns_t arrival) {
  // RFC 7273 §5.2: the timestamp is the capture instant on the reference clock. Of the instants
  // it can stand for (one every 2^32 ticks), the one nearest the arrival; the sender's NTP
  // instant of `ext` is then known as an SR would say it, at the nominal rate (the media
  // clock is the reference clock: no rate to measure).
  const std::int64_t ntp_arrival =
      arrival + (p_.wall != nullptr ? p_.wall->ntp_minus_monotonic_ns()
                                    : WallClock::read_ntp_minus_monotonic_ns());
  const std::int64_t epoch_shift =
      p_.media_clock->reference == MediaClock::Reference::ptp
          ? ptp_minus_ntp_epoch_ns(p_.wall != nullptr ? p_.wall->tai_minus_utc_s()
                                                      : WallClock::kDefaultTaiMinusUtcS)
          : 0;
  const std::int64_t capture_ref = media_clock_instant(
      ts, p_.format.clock_rate, p_.media_clock->offset, ntp_arrival - epoch_shift);
  (void)sender_clock_.on_sender_report(capture_ref + epoch_shift, ext);
}

void Source::check_clock_rate(ext_ts_t ts, mono_ns_t arrival) {
  constexpr mono_ns_t kWindow = 2'000'000'000;
  constexpr mono_ns_t kQuickWindow = 500'000'000;
  constexpr mono_ns_t kPause = 500'000'000;  // a pause or restart begins a new window
  const double nominal = p_.format.clock_rate;
  const bool fresh = rate_t0_ == 0;
  bool restart = fresh || arrival - rate_t_last_ > kPause || ts <= rate_ts_last_;
  if (!restart) {
    // A step of RTP time 250 ms away from its arrival gap (a sender restart or pause, a DTX
    // gap the sender did not timestamp, a stall) is not a rate either. A wrong mapping moves
    // far less per packet: 8 kHz read as 48 kHz, 17 ms per 20 ms packet; 48 kHz read as 8 kHz,
    // 100 ms.
    const double ts_ns = static_cast<double>(ts - rate_ts_last_) * 1e9 / nominal;
    restart = std::abs(ts_ns - static_cast<double>(arrival - rate_t_last_)) > 250e6;
  }
  if (restart) {
    rate_ts0_ = rate_ts_last_ = ts;
    rate_t0_ = rate_t_last_ = arrival;
    return;
  }
  rate_ts_last_ = ts;
  rate_t_last_ = arrival;
  const mono_ns_t span = arrival - rate_t0_;
  if (span < kQuickWindow) return;
  const double rate = static_cast<double>(ts - rate_ts0_) * 1e9 / static_cast<double>(span);
  const double off = std::abs(rate / nominal - 1.0);
  // A factor of 1.8 or more shows within half a second (neither jitter nor a pause short of
  // the 250 ms restart can fake it over that span); a few percent needs the whole window, and
  // more than 5 % by what four times the jitter at both ends could fake.
  if (span < kWindow && off <= 0.8) return;
  stats_.measured_clock_rate = rate;
  rate_ts0_ = ts;
  rate_t0_ = arrival;
  const double jitter = static_cast<double>(playout_.estimator().jitter_ns());
  if (off <= 0.05 + 4.0 * jitter / static_cast<double>(span)) return;
  if (stats_.clock_rate_mismatches++ == 0) {
    // Stop chasing: the delay estimate of a stream whose RTP time runs at the wrong rate
    // grows to --max-latency within a second or two (the issue measured a 1000 ms target and
    // 8.6 s of concealment in 11 s). The target goes back to the start delay and stays there.
    const mono_ns_t start = playout_.config().start_delay_ns;
    playout_.set_bounds(start, start);
  }
}

namespace {
/// Consecutive packet pairs with the same disagreement before it counts (one pair is a
/// talkspurt, a DTX gap or a sender's timestamp jump; a run is the mapping).
constexpr int kLengthMismatchRun = 4;
}  // namespace

void Source::check_length(ext_seq_t seq, ext_ts_t ts, std::span<const std::uint8_t> payload) {
  const int frames = decoder_->frames_in(payload);
  const bool follows = len_frames_ > 0 && seq == len_seq_ + 1 && ts > len_ts_;
  if (follows) {
    const double advanced = static_cast<double>(ts - len_ts_) * p_.format.frames_per_tick();
    // A packet holding more audio than the time to the next one is impossible for any codec.
    // Less is normal for Opus DTX and silence suppression, but a steady ratio for a codec whose
    // length follows from its size (everything but Opus) is the mapping.
    const double diff = len_frames_ - advanced;
    const bool mismatch = diff > 0.5 || (diff < -0.5 && p_.format.codec != Codec::opus);
    if (mismatch && (len_run_ == 0 || advanced == len_advanced_)) {
      if (++len_run_ >= kLengthMismatchRun) {
        stats_.packets_length_mismatch += len_run_ == kLengthMismatchRun ? kLengthMismatchRun : 1;
        mismatch_frames_ = len_frames_;
        mismatch_advanced_ = advanced;
      }
    } else {
      len_run_ = mismatch ? 1 : 0;
    }
    len_advanced_ = advanced;
  }
  len_seq_ = seq;
  len_ts_ = ts;
  len_frames_ = frames;
}

std::string Source::take_format_warning() {
  // Called every 100 ms per source: nothing is built unless there is a warning to give.
  if ((stats_.packets_malformed == 0 || warned_undecodable_) &&
      (stats_.clock_rate_mismatches == 0 || warned_clock_) &&
      (raw_overflow_ == 0 || warned_raw_overflow_) &&
      (stats_.packets_length_mismatch == 0 || warned_length_))
    return {};
  const std::string pt = std::to_string(static_cast<int>(p_.payload_type));
  if (stats_.packets_malformed > 0 && !warned_undecodable_) {
    warned_undecodable_ = true;
    return "its payload does not decode as " + p_.format.describe() +
           " (a partial frame or corrupt data; counted as packets_malformed): is payload type " +
           pt + " mapped to the sender's codec, sample size (L16 or L24) and channel count?";
  }
  if (stats_.clock_rate_mismatches > 0 && !warned_clock_) {
    warned_clock_ = true;
    // The nearest common audio rate is the likely mapping.
    static constexpr double kRates[] = {8000,  11025, 12000, 16000, 22050, 24000,
                                        32000, 44100, 48000, 88200, 96000, 192000};
    const double rate = stats_.measured_clock_rate;
    double likely = kRates[0];
    for (double r : kRates)
      if (std::abs(std::log(r / rate)) < std::abs(std::log(likely / rate))) likely = r;
    char text[64];
    std::snprintf(text, sizeof text, "%.0f", rate);
    const std::string l = std::to_string(static_cast<long>(likely));
    return std::string("its RTP timestamps advance ") + text + " ticks a second, not " +
           std::to_string(p_.format.clock_rate) + " as " + p_.format.describe() +
           " says (counted as clock_rate_mismatches; its target delay is held at the start "
           "delay): the sender's "
           "clock is likely " +
           l + " Hz: map payload type " + pt + " as " + std::string(to_string(p_.format.codec)) +
           "/" + l + "/" + std::to_string(p_.format.channels) +
           ", or keep the codec's rate and add /ts=" + l;
  }
  if (raw_overflow_ > 0 && !warned_raw_overflow_) {
    warned_raw_overflow_ = true;
    return "its sender runs ahead of real time by more than the " +
           std::to_string(p_.raw_backlog_ns / 1'000'000) +
           " ms this node holds (--max-latency): datagrams beyond it are dropped (counted as "
           "packets_overflow); raise --max-latency (up to 60 s for --raw listens) to play them "
           "all";
  }
  if (stats_.packets_length_mismatch > 0 && !warned_length_) {
    warned_length_ = true;
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.3g",
                  mismatch_frames_ / std::max(mismatch_advanced_, 1.0));
    return std::string("its packets hold ") + ratio + "x the audio their RTP timestamps advance (" +
           std::to_string(mismatch_frames_) + " frames per " +
           std::to_string(static_cast<long>(mismatch_advanced_ / p_.format.frames_per_tick())) +
           " ticks) when decoded as " + p_.format.describe() +
           " (counted as packets_length_mismatch): is payload type " + pt +
           " mapped to the sender's sample size (L16 or L24), channel count and clock rate?";
  }
  return {};
}

void Source::on_raw(std::span<const std::uint8_t> payload, mono_ns_t arrival,
                    const DeviceClock& clock) {
  render_requested_ = true;
  const int frames = decoder_->frames_in(payload);
  if (frames <= 0) {
    ++stats_.packets_malformed;
    return;
  }
  const mono_ns_t duration = frames_to_ns(frames, static_cast<std::int64_t>(p_.format.audio_rate));
  if (raw_queued_ns_ + duration > p_.raw_backlog_ns) {
    // The sender is further ahead of real time than the node may hold.
    ++raw_overflow_;
    return;
  }
  const mono_ns_t due = std::max(arrival, raw_next_due_);
  raw_next_due_ = due + duration;
  raw_queue_.push_back(RawDatagram{{payload.begin(), payload.end()}, due, duration});
  raw_queued_ns_ += duration;
  feed_raw(arrival, clock);
}

void Source::feed_raw(mono_ns_t now, const DeviceClock& clock) {
  while (!raw_queue_.empty() && raw_queue_.front().due <= now) {
    RawDatagram& d = raw_queue_.front();
    const int frames = decoder_->frames_in(d.payload);
    const ext_seq_t seq = raw_seq_++;
    const ext_ts_t ts = raw_ts_;
    raw_ts_ += frames;
    insert(seq, ts, false, d.payload, d.due, clock);
    raw_queued_ns_ -= d.duration;
    raw_queue_.pop_front();
  }
}

double Source::raw_backlog_ms() const noexcept {
  return static_cast<double>(raw_queued_ns_) / 1e6;
}

void Source::push(frames_t frames) {
  const std::span<const float> out = resampler_.process(decode_buf_, frames);
  if (tap_) {
    const int ch = p_.format.channels;
    const PlayoutStream& s = rings_->current();
    tap_(s.start_frame + s.written_frames(), out.data(), static_cast<frames_t>(out.size()) / ch,
         ch);
  }
  rings_->current().ring.push(out.data(), out.size());
}

void Source::render(const DeviceClock& clock, mono_ns_t now) {
  if (p_.raw) feed_raw(now, clock);
  using Kind = JitterBuffer::Action::Kind;
  const int ch = p_.format.channels;
  const double ticks_to_frames = p_.format.frames_per_tick();
  const frames_t max_chunk = frames_t{p_.format.audio_rate} * kMaxPtimeMs / 1000;
  decode_buf_ = render_scratch(decode_samples_);
  rings_->collect(leaving_);
  if (awaiting_anchor_ || leaving_) return;

  while (pending_silence_ > 0) {
    const frames_t n = std::min(pending_silence_, rings_->current().free_frames());
    if (n <= 0) return;
    for (frames_t done = 0; done < n;) {
      const frames_t chunk =
          std::min<frames_t>(n - done, static_cast<frames_t>(decode_buf_.size()) / ch);
      std::fill_n(decode_buf_.data(), chunk * ch, 0.0f);
      rings_->current().ring.push(decode_buf_.data(), static_cast<std::size_t>(chunk * ch));
      done += chunk;
    }
    pending_silence_ -= n;
  }

  playout_.set_device_skew(clock.skew());
  for (;;) {
    if (bye_ && jb_.size() == 0) {
      leave(clock.frame_at(now));  // everything the sender sent before its BYE is in the ring
      return;
    }
    const mono_ns_t ahead = ahead_ns(clock, now);
    const ext_ts_t ptime = jb_.ptime_ticks();
    const PlayoutStep step = next_playout_step(jb_, playout_, now, ahead);
    mono_ns_t delay = step.delay_ns;
    const auto& a = step.action;
    if (a.kind == Kind::wait) return;
    if (!start_checked_) {
      // The stream's first step (Params::trim_start): the packets of the start delay are here.
      start_checked_ = true;
      if (p_.trim_start && a.kind == Kind::decode && !a.packet->comfort_noise &&
          playout_.config().adaptive && !p_.raw && !on_timeline()) {
        // The target plus the jitter measured so far once more (a quantile of a few packets is
        // their maximum, which understates the tail); a --min-latency floor or an FEC margin is
        // not doubled.
        const mono_ns_t keep =
            std::min(playout_.target_ns(ptime) + playout_.estimator().quantile_ns(),
                     playout_.config().max_delay_ns);
        if (delay > keep) start_skip_ = ns_to_frames(delay - keep, p_.format.audio_rate);
      }
    }
    // Audio is dropped only before anything has played: a concealed span first ends the skip.
    if (a.kind != Kind::decode) start_skip_ = 0;
    if (a.kind == Kind::decode) {
      if (a.packet->comfort_noise) {
        const auto level = a.packet->payload();
        if (!level.empty()) concealer_.set_comfort_noise(level[0]);
        jb_.played(a, 0);  // the span up to the next packet is a gap
        continue;
      }
      const int expect = decoder_->frames_in(a.packet->payload());
      if (rings_->current().free_frames() <
          device_frames_for(expect > 0 ? expect : max_chunk) * 102 / 100 + 2) {
        // The ring is full. A synchronised source whose audio lies further ahead than any delay
        // it may play with was placed by a wrong mapping (forged SRs): check its placement now,
        // since the decode that would check it waits for as long as that placement says.
        PlayoutStream* const was = &rings_->current();
        if (on_timeline() && ahead > max_ahead_ns())
          (void)check_placement(a.packet->ts, clock, now, delay);
        if (&rings_->current() != was) continue;
        return;
      }
      const int decoded = decoder_->decode(a.packet->payload(), decode_buf_);
      if (decoded < 0) {
        ++stats_.packets_malformed;
        jb_.discard(a);
        continue;
      }
      const auto decoded_ticks = static_cast<ext_ts_t>(std::llround(decoded / ticks_to_frames));
      int n = decoded;
      ext_ts_t first_ts = a.packet->ts;  // RTP time of the first frame pushed (trim_start)
      mono_ns_t skipped_ns = 0;          // of this packet's start (trim_start)
      if (start_skip_ > 0) {
        if (start_skip_ >= n) {
          start_skip_ -= n;
          stats_.frames_start_skipped += static_cast<std::uint64_t>(n);
          jb_.played(a, decoded_ticks);  // never heard: the cursor moves, the ring does not
          continue;
        }
        // Part of the packet: whole RTP ticks of it, so that the first frame kept has an exact
        // RTP time (the timeline and the sync error are computed from it).
        const auto drop_ticks =
            static_cast<ext_ts_t>(std::floor(static_cast<double>(start_skip_) / ticks_to_frames));
        const auto drop =
            static_cast<frames_t>(std::llround(static_cast<double>(drop_ticks) * ticks_to_frames));
        start_skip_ = 0;
        if (drop > 0 && drop < n) {
          stats_.frames_start_skipped += static_cast<std::uint64_t>(drop);
          std::copy(decode_buf_.begin() + drop * ch, decode_buf_.begin() + n * ch,
                    decode_buf_.begin());
          n -= static_cast<int>(drop);
          first_ts += drop_ticks;
          skipped_ns = frames_to_ns(drop, p_.format.audio_rate);
          delay -= skipped_ns;  // the delay the first frame kept plays with
        }
      }
      const mono_ns_t sync_error = check_placement(first_ts, clock, now, delay);
      // Measured receiver delay: from arrival to the DAC time of the packet's first frame.
      const frames_t k = next_ring_frame();
      const mono_ns_t dac = clock.time_of(rings_->current().start_frame + k) +
                            frames_to_ns(clock.output_latency_frames(), dev_rate_);
      const auto measured = static_cast<double>(dac - skipped_ns - a.packet->arrival_ns);
      if (sender_clock_.has_mapping() && p_.timeline) {
        // Sender capture instant (NTP, wall clock) to DAC, with the receiver's wall clock.
        const double dac_ntp =
            static_cast<double>(dac) +
            static_cast<double>(p_.wall != nullptr ? p_.wall->ntp_minus_monotonic_ns()
                                                   : WallClock::read_ntp_minus_monotonic_ns());
        const double c2d = dac_ntp - static_cast<double>(sender_clock_.ntp_of(first_ts));
        capture_to_dac_ns_ =
            have_delay_ ? capture_to_dac_ns_ + kDelayMeanWeight * (c2d - capture_to_dac_ns_) : c2d;
      }
      arrival_to_dac_ns_ =
          have_delay_ ? arrival_to_dac_ns_ + kDelayMeanWeight * (measured - arrival_to_dac_ns_)
                      : measured;
      have_delay_ = true;
      last_delay_ns_ = delay;  // the delay this packet plays with
      // Synchronised: the speed loop holds the source on the timeline (error = how late it
      // plays) instead of at its own target.
      // Synchronised sources hold a fractional place: no whole-frame bypass for them.
      resampler_.allow_bypass(!(placement_.placed() && on_timeline()));
      resampler_.set_speed(placement_.placed() && on_timeline()
                               ? playout_.update_speed_on_timeline(now, sync_error)
                               : playout_.update_speed(now, delay, ptime));
      concealer_.decoded(decode_buf_.data(), n);
      concealer_.clear_comfort_noise();
      push(n);
      jb_.played(a, decoded_ticks);
      continue;
    }
    // Concealment, expansion or gap: at most one packet-length chunk at a time, and only what
    // the ring has room for (it holds about 170 ms; a long gap is filled as it drains).
    const frames_t frames = std::min<frames_t>(
        static_cast<frames_t>(std::llround(static_cast<double>(a.ticks) * ticks_to_frames)),
        max_chunk);
    const ext_ts_t ticks =
        static_cast<ext_ts_t>(std::llround(static_cast<double>(frames) / ticks_to_frames));
    // A gap may be stretched to twice its span to grow the delay (adjust_gap).
    const frames_t room = a.kind == Kind::gap ? std::min(2 * frames, max_chunk) : frames;
    if (frames <= 0 || rings_->current().free_frames() < device_frames_for(room) * 102 / 100 + 2)
      return;
    if (a.kind == Kind::gap) {
      // Silence from the sender: the place to close the gap between delay and target.
      const mono_ns_t span_ns = frames_to_ns(frames, p_.format.audio_rate);
      const frames_t out =
          std::min(ns_to_frames(playout_.adjust_gap(span_ns, delay, ptime), p_.format.audio_rate),
                   max_chunk);
      if (out > 0) {
        if (decoder_->fill_silence(static_cast<int>(out), decode_buf_) == out) {
          // The codec's own DTX fill: Opus, G.729 Annex B comfort noise after a SID.
        } else if (concealer_.has_comfort_noise()) {
          concealer_.comfort_noise(decode_buf_.data(), out);
        } else {
          std::fill_n(decode_buf_.data(), out * ch, 0.0f);
        }
        stats_.frames_gap += static_cast<std::uint64_t>(out);
        push(out);
      }
      jb_.played(a, ticks);
      continue;
    }
    // Concealment extrapolates for at most kMaxConcealMs in a row; past that the stream has
    // stalled or ended, and silence (not counted as concealment) is played until it resumes.
    if (a.kind == Kind::expand) {
      playout_.count_expansion();
      ++stats_.expansions;
    }
    // The redundancy of a later packet: the one right after the span (Opus FEC, RFC 2198
    // distance 1), else a block further on (RFC 2198 distance 2 or 3, from the packets stored
    // after the span; GStreamer's rtpredenc distance=2 repeats only the packet two back).
    auto rebuilt = [&] {
      if (a.kind != Kind::conceal) return false;
      if (a.packet && decoder_->decode_fec(a.packet->payload(), static_cast<int>(frames),
                                           decode_buf_) == frames)
        return true;
      const StoredPacket* p = a.later;
      for (int hop = 0; p != nullptr && hop < 3; ++hop) {
        // (The adjacent packet's block at this offset was tried by decode_fec above.)
        if (p != a.packet &&
            decoder_->decode_redundant(p->payload(), p->ts - jb_.cursor_ts(),
                                       static_cast<int>(frames), decode_buf_) == frames)
          return true;
        p = jb_.stored(p->seq + 1);
      }
      return false;
    };
    if (rebuilt()) {
      ++stats_.fec_recovered;
      concealer_.decoded(decode_buf_.data(), frames);
    } else if (decoder_->in_dtx() &&
               decoder_->fill_silence(static_cast<int>(frames), decode_buf_) == frames) {
      // The sender said it went silent (G.729 Annex B SID): what is missing is most likely
      // not sent, and the codec's comfort noise fills it (for as long as it lasts), as the
      // decoder of an erased frame after a SID does (G.729 Annex B.27).
      stats_.frames_gap += static_cast<std::uint64_t>(frames);
    } else if (concealer_.has_comfort_noise()) {
      // RFC 3389: a comfort-noise packet announced the silence; its noise fills it.
      concealer_.comfort_noise(decode_buf_.data(), frames);
      stats_.frames_gap += static_cast<std::uint64_t>(frames);
    } else if (concealer_.exhausted()) {
      concealer_.silence(decode_buf_.data(), frames);
    } else {
      decoder_->conceal(static_cast<int>(frames), decode_buf_);
      concealer_.concealed(decode_buf_.data(), frames);
    }
    push(frames);
    jb_.played(a, ticks);
  }
}

RtcpReportBlock Source::take_report_block() {
  return rx_.take_report_block(p_.ssrc, jb_.counters().duplicate,
                               static_cast<std::uint32_t>(std::llround(
                                   playout_.estimator().jitter_ns() * p_.format.clock_rate / 1e9)));
}

SourceStats Source::stats() const {
  SourceStats s = stats_;
  s.packets_received = rx_.received();
  s.frames_concealed = concealer_.frames_concealed();
  s.concealment_events = concealer_.concealment_events();
  s.frames_silent = concealer_.frames_silent();
  s.packets_lost = rx_.lost();
  s.packets_late = jb_.counters().late;
  s.packets_duplicate = jb_.counters().duplicate;
  s.packets_overflow = jb_.counters().overflow + raw_overflow_;
  s.raw_backlog_ms = raw_backlog_ms();
  const SourceRings::Totals t = rings_->totals();
  s.underruns = t.underruns;
  s.underrun_frames = t.underrun_frames;
  s.frames_played = t.frames_played;
  s.frames_skipped = t.frames_skipped;
  s.placements = rings_->placements();
  s.placements_forced = rings_->placements_forced();
  s.mixer_refusals = rings_->mixer_refusals();
  s.jitter_ms = playout_.estimator().jitter_ns() / 1e6;
  s.jitter_max_ms = jitter_max_ns_ / 1e6;
  s.jitter_mean_ms =
      jitter_packets_ > 1 ? jitter_sum_ns_ / static_cast<double>(jitter_packets_ - 1) / 1e6 : 0.0;
  s.max_gap_ms = static_cast<double>(max_gap_ns_) / 1e6;
  s.target_delay_ms = static_cast<double>(playout_.target_ns(jb_.ptime_ticks())) / 1e6;
  s.playout_delay_ms = static_cast<double>(last_delay_ns_) / 1e6;
  s.speed = resampler_.speed();
  s.frames_resampled = resampler_.filtered_frames();
  s.resampler_slips = resampler_.slips();
  s.drift_ppm = playout_.measured_drift() * 1e6;
  s.drift_integral_ppm = playout_.integral() * 1e6;
  s.drift_at_limit = playout_.at_limit();
  s.arrival_to_dac_ms = arrival_to_dac_ns_ / 1e6;
  s.queued_ms = queued_ms();
  s.synced = placement_.placed() && on_timeline();
  s.sync_error_ms =
      s.synced ? placement_.error_frames() * 1000.0 / static_cast<double>(dev_rate_) : 0.0;
  s.placements_deferred = placement_.deferred();
  s.short_of_delay = placement_.short_of_delay();
  s.capture_to_dac_ms = s.synced ? capture_to_dac_ns_ / 1e6 : 0.0;
  s.offset_ms = static_cast<double>(p_.offset_frames) * 1000.0 / static_cast<double>(dev_rate_);
  s.gain_db = rings_->gain_db();
  s.muted = rings_->muted();
  s.route = rings_->route_text();
  return s;
}

}  // namespace rtpnode
