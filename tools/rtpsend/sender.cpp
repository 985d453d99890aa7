#include "tools/rtpsend/sender.hpp"

#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <stdexcept>

#include "rtp/media_clock.hpp"
#include "rtp/rtcp.hpp"
#include "rtp/redundancy.hpp"

namespace rtpnode::rtpsend {

namespace {

volatile std::sig_atomic_t g_stop = 0;

std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
std::int64_t mono_ns() {
  return clock_ns(CLOCK_MONOTONIC);
}

void sleep_until(std::int64_t t_ns) {
  timespec ts{static_cast<time_t>(t_ns / 1'000'000'000), static_cast<long>(t_ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR && !g_stop) {
  }
}

}  // namespace

void request_stop() noexcept {
  g_stop = 1;
}

Sender::Sender(const Options& o, const Plan& p, std::vector<std::unique_ptr<Stream>>& streams,
               std::random_device& rd)
    : o_(o), p_(p), streams_(streams), rd_(rd), rate_scale_(1.0 + o.skew_ppm * 1e-6) {
  std::string err;
  // Start time: now (+2 ms to settle), +DURATION, or a Unix time.
  t0_ = mono_ns() + 2'000'000;
  if (!o_.start_at.empty()) {
    if (o_.start_at[0] == '+') {
      auto d = parse_duration(o_.start_at.substr(1), err);
      if (!d) throw std::runtime_error("--start-at: " + err);
      t0_ = mono_ns() + d->count();
    } else {
      double unix_s = 0;
      auto r = std::from_chars(o_.start_at.data(), o_.start_at.data() + o_.start_at.size(), unix_s);
      if (r.ec != std::errc{} || r.ptr != o_.start_at.data() + o_.start_at.size())
        throw std::runtime_error("--start-at " + o_.start_at +
                                 ": +DURATION or a Unix time in seconds");
      t0_ = mono_ns() + static_cast<std::int64_t>(std::llround(unix_s * 1e9)) -
            clock_ns(CLOCK_REALTIME);
    }
  }
  // Sender wall clock (RFC 3550 §4 NTP format) = monotonic + this offset.
  ntp_minus_mono_ = clock_ns(CLOCK_REALTIME) - mono_ns() + 2'208'988'800ll * 1'000'000'000ll;
  if (!o_.live_epoch.empty()) {
    double epoch_s = 0;
    auto r =
        std::from_chars(o_.live_epoch.data(), o_.live_epoch.data() + o_.live_epoch.size(), epoch_s);
    if (r.ec != std::errc{} || r.ptr != o_.live_epoch.data() + o_.live_epoch.size())
      throw std::runtime_error("--live-epoch " + o_.live_epoch + ": a Unix time in seconds");
    // Start on the 10 ms grid counted from the epoch: a whole number of frames at every rate
    // (8, 16, 32, 44.1, 48 kHz), so each sender's first frame is exactly an input frame.
    const std::int64_t epoch_mono = static_cast<std::int64_t>(std::llround(epoch_s * 1e9)) +
                                    2'208'988'800ll * 1'000'000'000ll - ntp_minus_mono_;
    constexpr std::int64_t kGrid = 10'000'000;
    const std::int64_t since = t0_ - epoch_mono;
    const std::int64_t steps = since >= 0 ? (since + kGrid - 1) / kGrid : -((-since) / kGrid);
    t0_ = epoch_mono + steps * kGrid;
    for (auto& sp : streams_) {
      sp->live = true;
      sp->vpos = steps * static_cast<std::int64_t>(sp->fmt.audio_rate) / 100;
    }
  }
  if (!o_.ts_refclk.empty()) {
    // RFC 7273 §5.2 (mediaclk:direct): packet 0's timestamp is its capture instant on the
    // reference clock, in clock-rate ticks since that clock's epoch, plus the offset. ntp: this
    // machine's wall clock from 1900; ptp: TAI from 1970 (UTC + 37 s since 2017).
    for (auto& sp : streams_) {
      Stream& s = *sp;
      std::int64_t ref_ns = nominal(s, 0) + ntp_minus_mono_;
      if (o_.ts_refclk == "ptp") ref_ns -= ptp_minus_ntp_epoch_ns(37);
      s.ts_base = media_clock_timestamp(ref_ns, s.fmt.clock_rate, s.media_offset);
    }
  }
  if (p.duration) end_ = t0_ + p.duration->count();
  for (auto& sp : streams_) sp->next_sr_at = t0_;
}

std::int64_t Sender::nominal(const Stream& s, std::uint64_t i) const {
  return t0_ + static_cast<std::int64_t>(
                   static_cast<double>(frames_to_ns(static_cast<frames_t>(i) * s.frames_per_packet,
                                                    s.fmt.audio_rate)) /
                   rate_scale_);
}

void Sender::send_sr(Stream& s, std::uint64_t index, bool bye) {
  if (s.rtcp_fd < 0) return;
  RtcpSenderReport sr;
  sr.ssrc = s.ssrc;
  const std::int64_t ntp_ns = nominal(s, index) + ntp_minus_mono_;
  sr.ntp = (static_cast<std::uint64_t>(ntp_ns / 1'000'000'000) << 32) |
           ((static_cast<std::uint64_t>(ntp_ns % 1'000'000'000) << 32) / 1'000'000'000);
  sr.rtp_ts = static_cast<std::uint32_t>(s.ts_base +
                                         index * static_cast<std::uint64_t>(s.ticks_per_packet));
  sr.packets = static_cast<std::uint32_t>(s.packets);
  sr.octets = static_cast<std::uint32_t>(s.bytes);
  const auto pkt = rtcp_build_sender_report(sr, "rtpsend", bye);
  sendto(s.rtcp_fd, pkt.data(), pkt.size(), 0, reinterpret_cast<const sockaddr*>(&s.rtcp_addr),
         s.rtcp_len);
}

void Sender::generate(Stream& s, std::int64_t at) {
  if (at >= s.next_sr_at) {
    send_sr(s, s.index, false);
    s.next_sr_at += p_.sr_interval.count();
  }
  const std::int64_t elapsed = at - t0_;
  if (p_.ssrc_change_at >= 0 && elapsed >= p_.ssrc_change_at && !s.ssrc_changed) {
    s.ssrc_changed = true;
    s.ssrc = (std::uint32_t{rd_()} << 16) ^ rd_();
    s.seq = static_cast<std::uint16_t>(rd_());
    s.ts_base = static_cast<std::uint32_t>(rd_());
    s.marker_next = true;
    ++s.ssrc_changes;
    if (s.session) rtp_session_set_ssrc(s.session, s.ssrc);
  }
  if (p_.seq_jump_at >= 0 && elapsed >= p_.seq_jump_at && !s.seq_jumped) {
    s.seq_jumped = true;
    s.seq = static_cast<std::uint16_t>(s.seq + 10000);
  }
  if (p_.ts_jump_at >= 0 && elapsed >= p_.ts_jump_at && !s.ts_jumped) {
    s.ts_jumped = true;
    s.ts_base += s.fmt.clock_rate * 60;
  }
  std::vector<std::int16_t> pcm(static_cast<std::size_t>(s.frames_per_packet) * s.fmt.channels, 0);
  if (s.live) {
    // A live feed: frame k of the packet is input frame vpos + k (silence before the feed
    // began; the input repeats exactly with --loop).
    const auto frames = static_cast<std::int64_t>(s.audio.frames());
    for (int k = 0; k < s.frames_per_packet; ++k) {
      std::int64_t idx = s.vpos + k;
      if (idx < 0 || frames == 0) continue;
      if (idx >= frames) {
        if (!o_.loop && !p_.signals) break;  // signals always loop
        idx %= frames;
      }
      std::copy_n(s.audio.samples.begin() + static_cast<std::ptrdiff_t>(idx * s.fmt.channels),
                  s.fmt.channels, pcm.begin() + static_cast<std::ptrdiff_t>(k * s.fmt.channels));
    }
    s.vpos += s.frames_per_packet;
  } else {
    if (s.pos >= s.audio.frames()) s.pos = 0;  // looping input
    const std::size_t n = std::min<std::size_t>(s.frames_per_packet, s.audio.frames() - s.pos);
    std::copy_n(s.audio.samples.begin() + static_cast<std::ptrdiff_t>(s.pos * s.fmt.channels),
                n * s.fmt.channels, pcm.begin());
    s.pos += n;
  }
  const int len = s.enc->encode(pcm, s.frames_per_packet, payload_);
  if (len < 0) throw std::runtime_error("encoder failed");
  const auto ts = static_cast<std::uint32_t>(
      s.ts_base + s.index * static_cast<std::uint64_t>(s.ticks_per_packet));
  ++s.index;
  auto log = [&](std::uint16_t seq, std::int64_t when, const char* fate) {
    if (s.trace) s.trace << seq << ' ' << ts << ' ' << (when - t0_) << ' ' << fate << '\n';
  };
  if (p_.pause_at >= 0 && elapsed >= p_.pause_at && elapsed < p_.pause_at + p_.pause_dur) {
    s.red_has_previous = false;
    ++s.paused;
    s.marker_next = true;
    log(s.seq, at, "paused");
    return;
  }
  if ((s.fmt.codec == Codec::opus && p_.encoder.opus_dtx && len <= 2) ||
      ((s.fmt.codec == Codec::g729 || s.fmt.codec == Codec::amr_nb) && len == 0)) {
    // RFC 7587 §3.3: a 1-2 byte DTX frame need not be sent; G.729 Annex B leaves frames
    // untransmitted between SID frames. The next talkspurt is marked.
    s.red_has_previous = false;
    ++s.dtx_suppressed;
    s.marker_next = true;
    log(s.seq, at, "dtx");
    return;
  }
  std::vector<std::uint8_t> bytes(payload_.begin(), payload_.begin() + len);
  if (s.red_pt >= 0) {
    // RFC 2198: the previous packet's audio (even when the network loses that packet: the
    // redundancy exists for that), then this packet's; a block the fields cannot hold (more
    // than 1023 bytes, or 16383 ticks back) is left out.
    std::vector<RedBlock> redundant;
    const std::uint32_t back = ts - s.red_previous_ts;
    if (s.red_has_previous && back <= 0x3fff && s.red_previous.size() <= 0x3ff)
      redundant.push_back(RedBlock{static_cast<std::uint8_t>(s.pt),
                                   static_cast<std::uint16_t>(back), s.red_previous});
    std::vector<std::uint8_t> red(bytes.size() * 2 + 8);
    const auto n = build_red(redundant, RedBlock{static_cast<std::uint8_t>(s.pt), 0, bytes}, red);
    if (!n) throw std::runtime_error("RFC 2198 packet does not fit");
    red.resize(*n);
    s.red_previous = std::move(bytes);
    s.red_previous_ts = ts;
    s.red_has_previous = true;
    bytes = std::move(red);
  }
  ++s.packets;
  const std::uint16_t seq = s.seq++;
  const PacketFate fate = p_.faults.any() ? s.injector->next() : PacketFate{};
  if (fate.lost) {
    log(seq, at, "lost");
    return;
  }
  for (int c = 0; c < (fate.duplicated ? 2 : 1); ++c)
    s.queue.push({at + fate.delay_ns, s.order++, seq, ts, s.marker_next, bytes});
  s.marker_next = false;
  log(seq, at + fate.delay_ns,
      fate.reordered    ? "reordered"
      : fate.duplicated ? "duplicated"
                        : "sent");
}

void Sender::send(Stream& s) {
  const Stream::Pending p = s.queue.top();
  s.queue.pop();
  s.late_us.push_back(static_cast<double>(mono_ns() - p.send_at) / 1000.0);
  if (s.raw_fd >= 0) {
    sendto(s.raw_fd, p.payload.data(), p.payload.size(), 0,
           reinterpret_cast<sockaddr*>(&s.raw_addr), s.raw_len);
  } else {
    // oRTP stamps the sequence number when it creates the packet: set it first.
    rtp_session_set_seq_number(s.session, p.seq);
    mblk_t* m = rtp_session_create_packet(s.session, RTP_FIXED_HEADER_SIZE, p.payload.data(),
                                          p.payload.size());
    rtp_set_markbit(m, p.marker ? 1 : 0);
    rtp_session_sendm_with_ts(s.session, m, p.ts);
  }
  ++s.datagrams;
  s.bytes += p.payload.size();
}

void Sender::run() {
  // Event loop over every stream: generate each packet at its nominal time, send each at its
  // send time; always the earliest event next.
  while (!g_stop) {
    Stream* best = nullptr;
    std::int64_t best_at = INT64_MAX;
    bool best_is_send = false;
    for (auto& sp : streams_) {
      Stream& s = *sp;
      const bool input_done = s.live ? s.vpos >= static_cast<std::int64_t>(s.audio.frames())
                                     : s.pos >= s.audio.frames();
      if (s.generating && ((input_done && !o_.loop && !p_.signals) || nominal(s, s.index) >= end_))
        s.generating = false;
      const std::int64_t gen_at = s.generating ? nominal(s, s.index) : INT64_MAX;
      const std::int64_t send_at = s.queue.empty() ? INT64_MAX : s.queue.top().send_at;
      if (gen_at < best_at) {
        best = &s;
        best_at = gen_at;
        best_is_send = false;
      }
      if (send_at < best_at) {
        best = &s;
        best_at = send_at;
        best_is_send = true;
      }
    }
    if (!best) break;
    if (best_is_send) {
      sleep_until(best_at);
      send(*best);
    } else {
      generate(*best,
               best_at);  // encoding happens ahead of the deadline: packets wait in the queue
    }
  }
  if (!o_.no_bye)
    for (auto& sp : streams_) send_sr(*sp, sp->index, true);  // RFC 3550 §6.6: the stream ends
}

}  // namespace rtpnode::rtpsend
