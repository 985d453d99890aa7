// A source: one RTP stream (one SSRC on one listen port) or one headerless PCM sender. Owned by
// the loop thread. Its stages, wired in render(): jitter buffer -> decoder (+ concealment, Opus
// FEC) -> resampler to the device rate (its ratio also trims the playback speed) -> PlayoutStream
// ring, placed on the device timeline.
//
// Timeline: the first packet (and each resync) anchors the source so that its first frame is
// rendered `delay` after its arrival and reaches the mixer `render_lead` later:
//   start_frame = F(arrival + delay) + lead_frames
// where delay is the fixed --latency or, adaptive, the start delay (jitter/playout.hpp). From then
// on, ring frame k plays at device frame start_frame + k, and the audio not yet in the ring is
// needed when the ring runs down to the render lead: `ahead` = frames queued past that point
// (including what the resampler holds) is the playout controller's input, and the jitter
// buffer's deadline is "ahead <= 0".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <deque>
#include <memory>
#include <utility>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <netinet/in.h>

#include "jitter/jitter_buffer.hpp"
#include "jitter/playout.hpp"
#include "node/concealer.hpp"
#include "node/device_clock.hpp"
#include "node/drift_resampler.hpp"
#include "node/sender_clock.hpp"
#include "node/source_rings.hpp"
#include "node/mixer.hpp"
#include "node/sync_timeline.hpp"
#include "node/wall_clock.hpp"
#include "rtp/media_clock.hpp"
#include "rtp/codec.hpp"
#include "rtp/rtcp.hpp"
#include "rtp/receive_stats.hpp"
#include "rtp/rtp_header.hpp"

namespace rtpnode {

/// Per-source statistics (loop thread). Counters are monotonic; *_ms are gauges.
struct SourceStats {
  std::uint32_t ssrc = 0;         ///< RTP SSRC (0 for raw PCM sources)
  std::uint16_t port = 0;         ///< local listen port
  std::string remote;             ///< sender address "ip:port"
  std::string session;            ///< SDP session name (--sdp, --sap), "" = none
  std::uint8_t payload_type = 0;  ///< RTP payload type (raw: 255)
  std::string payload;            ///< "pcmu/8000/1" style
  std::string media_clock;        ///< RFC 7273 reference clock from its SDP: "ntp", "ptp" or ""
  std::uint32_t audio_rate = 0;   ///< decoded frames per second (frames_concealed etc. count these)
  std::uint64_t packets_received = 0;   ///< unique packets of this stream (duplicates excluded),
                                        ///< late ones included (RFC 3550 A.3 "received")
  std::int64_t packets_lost = 0;        ///< RFC 3550 A.3 cumulative: expected - received, >= 0
  std::uint64_t packets_late = 0;       ///< arrived after their playout deadline, dropped
  std::uint64_t packets_duplicate = 0;  ///< sequence number already received, dropped
  std::uint64_t packets_malformed = 0;  ///< payload the decoder refused (corrupt, partial frame)
  /// packets whose payload decodes to another frame count than their RTP timestamp advances to
  /// the next packet, in runs of kLengthMismatchRun or more (a mapping with the wrong sample
  /// size, channel count or codec)
  std::uint64_t packets_length_mismatch = 0;
  /// times the RTP clock was measured more than 5 % off the mapping's over 2 s of arrivals
  /// (check_clock_rate); the first holds the target delay at the start delay
  std::uint64_t clock_rate_mismatches = 0;
  double measured_clock_rate = 0;      ///< RTP ticks per second of arrival time, last 2 s window
  std::uint64_t packets_other_pt = 0;  ///< valid packets of this SSRC with another payload type
  std::uint64_t packets_overflow = 0;  ///< dropped: the jitter buffer (or a raw backlog) was full
  double raw_backlog_ms = 0;           ///< raw: audio held while its sender runs ahead of real time
  std::uint64_t packets_reordered = 0;      ///< arrived after a higher sequence number, in time
  std::uint64_t packets_comfort_noise = 0;  ///< RFC 3389 comfort-noise packets (PT 13)
  std::uint64_t frames_concealed = 0;       ///< frames synthesised for missing audio (audio rate),
                                            ///< loss and delay-spike expansion alike
  std::uint64_t concealment_events = 0;     ///< runs of consecutive concealment
  std::uint64_t fec_recovered = 0;  ///< lost packets rebuilt from the next packet's redundancy
  std::uint64_t expansions = 0;     ///< concealment steps that raised the delay (spikes)
  std::uint64_t frames_silent = 0;  ///< silence after concealment gave up (stream stalled/ended)
  std::uint64_t frames_gap = 0;     ///< frames filled where the sender sent nothing (DTX/pause)
  /// Frames (audio rate) dropped before the stream's first audible frame (Params::trim_start).
  std::uint64_t frames_start_skipped = 0;
  std::uint64_t resyncs = 0;           ///< re-anchors after a sender restart or clock jump
  std::uint64_t underruns = 0;         ///< mixer blocks that began with missing frames
  std::uint64_t underrun_frames = 0;   ///< device frames zero-filled for missing audio
  std::uint64_t frames_played = 0;     ///< device frames mixed
  std::uint64_t frames_skipped = 0;    ///< device frames that reached the ring too late
  double jitter_ms = 0;                ///< RFC 3550 §6.4.1 interarrival jitter, in ms
  double jitter_max_ms = 0;            ///< its maximum over the stream
  double jitter_mean_ms = 0;           ///< its mean over the packets after the first
  double max_gap_ms = 0;               ///< longest time between two packets' arrivals
  bool adaptive = true;                ///< --latency auto
  double target_delay_ms = 0;          ///< jitter-buffer target delay (jitter/playout.hpp)
  double playout_delay_ms = 0;         ///< jitter-buffer delay over the fastest packet that the
                                       ///< last decoded packet played with
  double speed = 1;                    ///< resampling speed applied now (1 = none): drift
                                       ///< feed-forward + delay trim (jitter/playout.hpp)
  std::uint64_t frames_resampled = 0;  ///< device frames through the resampler's filter
  std::uint64_t resampler_slips = 0;   ///< bypass slips (node/drift_resampler.hpp)
  double drift_ppm = 0;                ///< estimated sender clock vs device clock, ppm (> 0: the
                                       ///< sender is fast); 0 until estimated (~5 s) or --drift off
  double drift_integral_ppm = 0;       ///< the speed loop's integral term, ppm: what the drift
                                       ///< estimate misses (near 0 when it is right)
  bool drift_at_limit = false;         ///< drift feed-forward or integral at its limit
                                       ///< (PlayoutController::at_limit)
  double arrival_to_dac_ms = 0;        ///< measured: packet arrival -> its first frame at the DAC
                                       ///< (mean of the last packets, exponential average)
  double queued_ms = 0;                ///< audio queued ahead of the device (ring + resampler)
  // Issue #4: placement, routing and control.
  bool synced = false;           ///< placed on the NTP timeline from RTCP SR
  double sync_error_ms = 0;      ///< synced: actual - NTP-timeline play time of the last
                                 ///< decoded packet, ms (> 0: plays late)
  double capture_to_dac_ms = 0;  ///< synced: sender capture (SR NTP) -> DAC, ms, assuming
                                 ///< the receiver's wall clock agrees with the sender's NTP
  double offset_ms = 0;          ///< user offset on the timeline (--offset / control)
  double gain_db = 0;            ///< user gain (--gain / control)
  bool muted = false;
  std::string route;                         ///< device channels, 1-based ("1,2"); "" = standard
  std::uint64_t sender_reports = 0;          ///< RTCP SRs received for this SSRC
  std::uint64_t sender_reports_ignored = 0;  ///< SRs whose mapping jumped and that no second SR
                                             ///< confirmed (Source::on_sender_report)
  std::uint64_t placements =
      0;  ///< rings replaced: re-placements on the timeline, offset changes, flushes
  std::uint64_t short_of_delay = 0;     ///< --sync absolute: decoded packets whose place on the
                                        ///< timeline had passed (TimelinePlacement::short_of_delay)
  std::uint64_t flushes = 0;            ///< control flushes
  std::uint64_t placements_forced = 0;  ///< leaving rings cut short: a re-placement came while
                                        ///< Source::kMaxStreams rings were in the mixer
  std::uint64_t placements_deferred = 0;  ///< re-placements postponed by the rate limit
                                          ///< (Source::kMinReplaceInterval)
  std::uint64_t mixer_refusals = 0;       ///< times the mixer refused this source's ring (no free
                                          ///< slot); it is offered again at once
};

class Source {
 public:
  /// Concealment shaping (node/concealer.hpp): silence after kMaxConcealMs of concealment, a
  /// fade from kConcealFadeFromMs, a kResumeRampMs ramp back to real audio.
  static constexpr int kMaxConcealMs = Concealer::kMaxConcealMs;
  static constexpr int kConcealFadeFromMs = Concealer::kConcealFadeFromMs;
  static constexpr int kResumeRampMs = Concealer::kResumeRampMs;
  /// Weight of each decoded packet in the exponential means arrival_to_dac_ms and
  /// capture_to_dac_ms (0.05: about the last 20 packets, 0.4 s at a 20 ms ptime).
  static constexpr double kDelayMeanWeight = 0.05;
  /// Rings one source may have in the mixer at once: the current one and those still fading
  /// out after re-placements. The node sizes the mixer with it (max_sources x kMaxStreams).
  static constexpr std::size_t kMaxStreams = SourceRings::kMaxStreams;
  /// A placed source re-places itself on the timeline at most this often (a changed SR mapping,
  /// a moved timeline); a user's offset change or flush is not limited.
  static constexpr std::chrono::nanoseconds kMinReplaceInterval =
      TimelinePlacement::kMinReplaceInterval;
  /// SR sanity (on_sender_report): the largest RTP-vs-NTP clock rate error accepted between two
  /// SRs of one sender (2000 ppm, as for the SR rate estimate), and the slack for SR stamping.
  static constexpr double kSrMaxRateError = SenderClock::kMaxRateError;
  static constexpr std::chrono::nanoseconds kSrTolerance = SenderClock::kTolerance;
  /// RFC 3551 static payload type of comfort noise (RFC 3389).
  static constexpr std::uint8_t kComfortNoisePayloadType = 13;

  struct Params {
    std::uint32_t id = 0;
    std::uint32_t ssrc = 0;
    std::uint16_t port = 0;
    std::string remote;
    std::string session;  ///< the SDP session (--sdp, --sap) its listen came from; "" = none
    sockaddr_storage remote_addr{};  ///< where its RTP comes from (RTCP RR: port + 1 without SR)
    std::uint8_t payload_type = 0;
    PayloadFormat format;
    bool raw = false;  ///< headerless PCM: sequence and timestamps are synthesised
    /// Raw only: the most audio (ns) held for a sender faster than real time (--max-latency,
    /// up to 60 s) before its datagrams are dropped as overflow.
    mono_ns_t raw_backlog_ns = 1'000'000'000;
    double device_rate = 48000;
    frames_t lead_frames = 0;
    PlayoutConfig playout;  ///< clock_rate is set from `format`
    int resampler_quality = 4;
    bool resampler_bypass = true;  ///< DriftResampler's bypass at equal rates
    /// Adaptive playout only (issue #18, "start at the delay the first packets justify"): the
    /// first packet is anchored at the start delay (60 ms by default), a guess made before any
    /// jitter is seen; when it is first decoded, the packets of that delay have arrived and the
    /// estimator has a target. The audio queued beyond that target plus the jitter measured so
    /// far is then dropped before anything has played, so the stream starts near its target at
    /// once instead of being trimmed down at the speed limit (1 %, 17 cents: 5-10 s of audible
    /// pitch change; 0.1 % for music: 40 s). The measured jitter twice: a quantile of a few
    /// packets is their maximum, which understates the tail; the speed loop trims the rest. Not for
    /// synchronised sources (the timeline places them), raw PCM, or a stream whose first step is
    /// concealment. Counted as SourceStats::frames_start_skipped. The node sets it for --profile
    /// music played to a device: a file (--output) or a call recording (--record) keeps every
    /// frame, and speech keeps the 60 ms start, which rides out the first seconds' jitter before
    /// the estimate knows it (measured: a start at 2 ms concealed 5 ms of a stream during a
    /// flood of garbage datagrams; speech is trimmed at 1 % as NetEq trims it).
    bool trim_start = false;
    /// The mixer this source adds its streams to, removes them from and sends gain/route
    /// changes to; null: none (unit tests drain the ring themselves).
    Mixer* mixer = nullptr;
    frames_t ramp_frames = 0;  ///< the mixer's ramp length (fades on re-placement)
    /// The node's NTP timeline; null = --sync none.
    SyncTimeline* timeline = nullptr;
    /// The node's wall clock (capture_to_dac_ms, with its test offset); null: read directly.
    WallClock* wall = nullptr;
    /// RFC 7273 direct media clock of the stream (--sdp / --sap): its timestamps map to NTP
    /// without Sender Reports (SRs are then counted, not used).
    std::optional<MediaClock> media_clock;
    /// --sync absolute: the playout delay (capture -> DAC, ns); the jitter buffer holds up to
    /// that long. 0 otherwise.
    mono_ns_t timeline_delay_ns = 0;
    frames_t offset_frames = 0;             ///< user offset, device frames (> 0: later)
    std::optional<std::vector<int>> route;  ///< 0-based device channels; unset = standard
    int device_channels = 2;
    double gain_db = 0;
  };

  /// Thread: loop. Allocates every buffer the source will use; throws std::runtime_error when a
  /// codec or the resampler cannot be created. `clock` must be valid().
  Source(const Params& p, mono_ns_t first_arrival, const DeviceClock& clock);
  ~Source();
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  /// Thread: loop. Takes one RTP packet of this source's SSRC.
  void on_rtp(const RtpHeaderView& h, mono_ns_t arrival, const DeviceClock& clock);
  /// Thread: loop. Takes one headerless PCM datagram.
  void on_raw(std::span<const std::uint8_t> payload, mono_ns_t arrival, const DeviceClock& clock);
  /// Thread: loop. Audio of a raw source held back because its sender runs ahead of real
  /// time, ms.
  [[nodiscard]] double raw_backlog_ms() const noexcept;
  /// Thread: loop. Decodes/conceals everything due before the render horizon into the ring.
  void render(const DeviceClock& clock, mono_ns_t now);
  /// Thread: loop. The monotonic time (ns) by which render() must run again, after a render at
  /// `now` (issue #18: the loop sleeps until then). Without a new datagram (those are rendered
  /// as they come: take_render_request), the next thing to do is the cursor's deadline, when
  /// the audio queued past the render lead runs out (playout_horizon: ahead_ns <= 0 makes a
  /// missing packet concealed or expanded); so it is now + ahead_ns; `now` + `busy_ns` while the
  /// source has other work
  /// (waiting for an anchor, silence to write, a BYE, leaving, a full ring); for raw sources no
  /// later than the next held-back datagram's due time. Rendering earlier is harmless.
  [[nodiscard]] mono_ns_t next_render_ns(const DeviceClock& clock, mono_ns_t now,
                                         mono_ns_t busy_ns) const noexcept;
  /// Thread: loop. True (once) when a datagram came since the last call: render now, so what
  /// arrived is decoded into the ring at once (the audio queued ahead is the node's margin
  /// against its own stalls) rather than at the deadline.
  [[nodiscard]] bool take_render_request() noexcept {
    return std::exchange(render_requested_, false);
  }

  /// Thread: loop. The latest RTCP SR of this SSRC: `ntp_ns` (ns since 1900) is the instant
  /// sampled at `rtp_ts` (RFC 3550 §6.4.1). Ignored without a timeline (--sync none). An SR
  /// whose mapping disagrees with the previous one by more than kSrMaxRateError x the time
  /// between them + kSrTolerance is counted (sender_reports_ignored) and held as a candidate;
  /// it is applied only when the next SR agrees with it (RFC 3550 §8.2: do not trust one packet).
  void on_sender_report(std::int64_t ntp_ns, rtp_ts_t rtp_ts);
  /// Thread: loop. A stream with an RFC 7273 media clock (Params::media_clock): the mapping of
  /// timestamp `ts` (extended: `ext`) that arrived at `arrival` to the sender's NTP time.
  void map_media_clock(rtp_ts_t ts, ext_ts_t ext, mono_ns_t arrival);
  /// What the jitter buffer of a source with `p` may store, bytes: the longest delay it may wait
  /// for (--max-latency, the start delay, --playout-delay) plus |offset| plus 1 s, at the
  /// codec's largest rate of payload bytes; at least 64 kB (issue #16 finding 4: sized from the
  /// codec and the bounds, not preallocated at a worst case). Any thread; pure.
  static std::size_t stored_bytes_cap(const Params& p);

  // Control (thread: loop). Changes apply at the device frame being rendered now
  // (clock.frame_at(now)), ramped by the mixer.
  void set_gain_db(double db, const DeviceClock& clock, mono_ns_t now);
  void set_muted(bool muted, const DeviceClock& clock, mono_ns_t now);
  /// False while the previous route change is still under way (retry).
  bool set_route(std::optional<std::vector<int>> channels, const DeviceClock& clock, mono_ns_t now);
  /// Moves the source on the timeline: takes effect at the next decoded packet (a re-placement,
  /// faded out and in).
  void set_offset(frames_t offset_frames);
  /// New --min-latency/--max-latency (ns): the adaptive target's bounds from now on.
  void set_latency_bounds(mono_ns_t min_ns, mono_ns_t max_ns) {
    playout_.set_bounds(min_ns, max_ns);
  }
  /// The device jumped (DeviceClock::last_jump_frames): its frames now play `behind` frames
  /// later in time. The audio queued for those frames is now that much late: at the next decoded
  /// packet the source drops it (a re-placement `behind` frames earlier, faded, never earlier
  /// than the render lead allows) instead of trimming it away at 1 % speed (issue #15). A
  /// synchronised source is placed again on the timeline, which SourceTable moved.
  /// A jump beyond kFlushAfterJumpMs (a device lost and reopened) flushes the source instead:
  /// what it queued is stale by that much; the next packet anchors it afresh.
  void on_device_jump(frames_t behind, const DeviceClock& clock, mono_ns_t now);
  static constexpr frames_t kFlushAfterJumpMs = 200;
  /// Drops everything queued (jitter buffer and ring, faded out now); the next packet anchors
  /// the source afresh.
  /// `keep_estimates`: the sender's timeline did not move (our device did): its delay floor and
  /// drift estimates stay valid, and the source starts again at the target it had.
  void flush(const DeviceClock& clock, mono_ns_t now, bool keep_estimates = false);
  /// Ends the source: its audio already queued plays out (RTCP BYE, timeout), the last ramp
  /// frames fading, then the mixer detaches it. See drained(). `now_frame` is the device frame
  /// playing now: a ring whose audio would end more than a ring's capacity after it (parked far
  /// ahead: a flush waiting for its anchor, a placement far in the future) is removed at once,
  /// or the source would never drain and would hold its --max-sources slot for good.
  void leave(frames_t now_frame);
  /// Thread: loop. The sender said RTCP BYE: what the jitter buffer holds still plays, then the
  /// source leaves (leaving() turns true).
  void on_bye() noexcept { bye_ = true; }
  [[nodiscard]] bool bye() const noexcept { return bye_; }
  /// True once an SR mapped this source's timestamps to NTP.
  [[nodiscard]] bool has_sender_report() const noexcept { return sender_clock_.has_mapping(); }
  /// Thread: loop. Defines `tl` from where this source plays now (its last decoded packet), so
  /// that it does not move when a second synchronised source arrives. False when it has not
  /// decoded a packet since its SR.
  bool define_timeline(SyncTimeline& tl) const;
  [[nodiscard]] bool leaving() const noexcept { return leaving_; }
  /// True once every stream of this source has been detached by the mixer (safe to free).
  [[nodiscard]] bool drained() const noexcept;
  /// Audio queued ahead of the device (ring + resampler), ms.
  [[nodiscard]] double queued_ms() const noexcept;

  /// Thread: loop. This source's report block for an RTCP RR sent now (RFC 3550 §6.4.1, A.3):
  /// fraction lost since the previous call (x 256, 0 when packets were duplicated instead),
  /// cumulative lost (clamped to 24-bit signed; duplicates count as received, as A.3 says, so it
  /// is below SourceStats::packets_lost by the duplicates and may be negative), extended highest
  /// sequence number received, interarrival jitter in RTP timestamp units. `reporter`, `lsr` and
  /// `dlsr` are left 0 for the caller. Advances the interval state (expected_prior,
  /// received_prior).
  [[nodiscard]] RtcpReportBlock take_report_block();
  /// Packets waiting in the jitter buffer.
  [[nodiscard]] std::size_t packets_buffered() const noexcept { return jb_.size(); }
  /// True once a sequence number was seen (an RR may report on it).
  [[nodiscard]] bool has_sequence() const noexcept { return rx_.started(); }

  [[nodiscard]] PlayoutStream* stream() noexcept { return &rings_->current(); }
  [[nodiscard]] SourceStats stats() const;
  [[nodiscard]] const Params& params() const noexcept { return p_; }
  [[nodiscard]] mono_ns_t last_arrival() const noexcept { return last_arrival_; }
  /// Thread: loop. A one-time warning about this source's payload format, "" when there is none
  /// (yet): the first time the decoder refused a payload (packets_malformed), and the first time
  /// its packets' lengths disagreed with their RTP timestamps (packets_length_mismatch). Each
  /// kind is returned once per source, so that the node warns once, not per packet.
  [[nodiscard]] std::string take_format_warning();
  /// Sees every frame this source hands to the mixer: `frames` frames of `channels` interleaved
  /// samples (the source's channels, at the device rate) that play from device frame
  /// `device_frame` on. Called on the loop thread as the frames are rendered (--record).
  using Tap = std::function<void(frames_t device_frame, const float* samples, frames_t frames,
                                 int channels)>;
  void set_tap(Tap tap) { tap_ = std::move(tap); }

 private:
  /// Compares the frames of the packet before (seq - 1) with how far the timestamp advanced
  /// to this one. Thread: loop.
  void check_length(ext_seq_t seq, ext_ts_t ts, std::span<const std::uint8_t> payload);
  /// Measures how fast RTP time advances against arrival time over windows of >= 2 s of
  /// steady packets (0.5 s when it is off by a factor of 1.8 or more); a rate > 5 % (plus what
  /// the jitter could fake) off the mapping's
  /// clock is counted, warned once (with the likely mapping) and holds the target delay at the
  /// start delay, so that the buffer stops chasing it.
  /// Thread: loop.
  void check_clock_rate(ext_ts_t ts, mono_ns_t arrival);
  void insert(ext_seq_t seq, ext_ts_t ts, bool marker, std::span<const std::uint8_t> payload,
              mono_ns_t arrival, const DeviceClock& clock, bool comfort_noise = false);
  /// After a resync: silence up to the frame where a packet arriving at `arrival` plays.
  void anchor(mono_ns_t arrival, const DeviceClock& clock);
  [[nodiscard]] frames_t device_frames_for(frames_t audio_frames) const noexcept;
  /// The most audio, ns, this source may hold past the point where new audio is needed: its
  /// largest playout delay, its offset and its ring. Beyond it, its placement is wrong.
  [[nodiscard]] mono_ns_t max_ahead_ns() const noexcept;
  /// Resamples (if needed) and pushes `frames` decoded frames from decode_buf_ into the ring.
  void push(frames_t frames);
  /// Audio queued past the render point, ns (the playout controller's `ahead`).
  [[nodiscard]] mono_ns_t ahead_ns(const DeviceClock& clock, mono_ns_t now) const noexcept;
  /// Replaces the ring by a new one whose frame 0 plays at `start_frame` (the resampler starts
  /// clean); the old one fades out from `old_leave_at` and is freed once detached.
  /// `now_frame` is the device frame playing now: an old ring that starts after it is removed at
  /// once. At most kMaxStreams rings per source are in the mixer (current + leaving).
  void restart_stream(frames_t start_frame, frames_t old_leave_at, frames_t now_frame);
  /// Ring frame (fractional) at which the next decoded frame plays: what the ring holds, the
  /// silence still to write, and where the resampler lands its next input (issue #20: exact,
  /// including the resampler's phase).
  [[nodiscard]] double next_ring_position() const noexcept;
  /// next_ring_position() rounded.
  [[nodiscard]] frames_t next_ring_frame() const noexcept;
  [[nodiscard]] double frames_per_ns(const DeviceClock& clock) const noexcept;
  /// True when this source plays on the NTP timeline: there is one, it is on, and this source's
  /// sender sent an SR.
  [[nodiscard]] bool on_timeline() const noexcept;
  /// Where a stream anchored by a packet of timestamp `ts` arriving at `arrival` starts: on the
  /// NTP timeline when synced (moving the timeline later if this source cannot make it), else
  /// at arrival + delay + render lead + offset.
  frames_t anchor_frame(ext_ts_t ts, mono_ns_t arrival, const DeviceClock& clock);
  /// At each decoded packet: keeps the source on the timeline; returns the sync error in ns
  /// (actual - wanted play time) for the speed loop, 0 when not synced. `delay_ns`: the
  /// jitter-buffer delay the packet plays with at its actual place (a placement never leaves
  /// the source less than its target delay: see the definition).
  mono_ns_t check_placement(ext_ts_t ts, const DeviceClock& clock, mono_ns_t now,
                            mono_ns_t delay_ns);

  Params p_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<SourceRings> rings_;  ///< its rings in the mixer, gain, mute, route
  JitterBuffer jb_;
  PlayoutController playout_;
  bool awaiting_anchor_ = false;   ///< flushed: the next packet anchors a new stream
  bool render_requested_ = false;  ///< a datagram came since take_render_request()
  bool leaving_ = false;
  bool bye_ = false;
  // Sync (RFC 3550 §6.4.1).
  TimelinePlacement placement_;  ///< its seat on the NTP timeline (node/sync_timeline.hpp)
  bool have_last_decode_ = false;
  ext_ts_t last_decoded_ts_ = 0;      ///< timestamp of the last decoded packet ...
  double last_decoded_position_ = 0;  ///< ... and the device frame its first frame plays at
  double capture_to_dac_ns_ = 0;
  frames_t pending_shift_ = 0;  ///< offset change not applied yet (unsynced sources)
  /// One packet's decoded audio (120 ms at the source's rate and channels), valid within a
  /// render() call: a view of the rendering thread's scratch buffer, which every source on that
  /// thread shares (they render one at a time; issue #16 finding 4, 46 kB per stereo source).
  std::span<float> decode_buf_;
  std::size_t decode_samples_ = 0;  ///< decode_buf_'s size
  std::int64_t dev_rate_;
  DriftResampler resampler_;  ///< to the device rate at the playout speed
  mono_ns_t last_delay_ns_ = 0;

  SeqUnwrapper seq_unwrap_;
  TsUnwrapper ts_unwrap_;
  ext_seq_t raw_seq_ = 0;
  ext_ts_t raw_ts_ = 0;
  /// Raw PCM is a byte stream (#17): every datagram plays once, in arrival order. A datagram's
  /// virtual arrival is max(its arrival, the previous one's + its duration): a sender faster
  /// than real time is paced to real time here, its excess held, so the jitter buffer sees a
  /// steady stream; feed_raw() hands datagrams on at their virtual arrival.
  struct RawDatagram {
    std::vector<std::uint8_t> payload;
    mono_ns_t due = 0;
    mono_ns_t duration = 0;
  };
  std::deque<RawDatagram> raw_queue_;
  mono_ns_t raw_next_due_ = 0;   ///< virtual arrival of the next datagram (0: none yet)
  mono_ns_t raw_queued_ns_ = 0;  ///< audio in raw_queue_
  bool warned_raw_overflow_ = false;
  std::uint64_t raw_overflow_ = 0;  ///< datagrams beyond raw_backlog_ns, dropped
  void feed_raw(mono_ns_t now, const DeviceClock& clock);

  frames_t pending_silence_ = 0;  ///< zero frames to write before the next audio (after a resync)
  Concealer concealer_;
  SenderClock sender_clock_;  ///< RTP timestamps to the sender's NTP clock, from its SRs ///< PLC
                              ///< shaping, silence after kMaxConcealMs, comfort noise

  // RFC 3550 A.3 state.
  ReceiveStats rx_;        ///< RFC 3550 A.3 counters and the RR block
  bool fec_seen_ = false;  ///< a packet carried Opus FEC: the target keeps one more packet

  mono_ns_t last_arrival_ = 0;
  bool warned_undecodable_ = false;
  bool warned_length_ = false;
  bool warned_clock_ = false;
  /// check_clock_rate's window: its first packet, and the last one.
  ext_ts_t rate_ts0_ = 0, rate_ts_last_ = 0;
  mono_ns_t rate_t0_ = 0, rate_t_last_ = 0;
  /// Packet-length check (check_length): the previous packet and the current mismatch run.
  ext_seq_t len_seq_ = 0;
  ext_ts_t len_ts_ = 0;
  int len_frames_ = -1;
  double len_advanced_ = 0;
  /// The disagreement that was counted (the warning says this, not the last packet's: a
  /// sender's odd-sized last packet of a burst would read as a different ratio).
  int mismatch_frames_ = 0;
  double mismatch_advanced_ = 0;
  int len_run_ = 0;
  Tap tap_;
  mono_ns_t max_gap_ns_ = 0;  ///< longest time between two packets' arrivals
  // Wireshark's RTP stream analysis figures: RFC 3550 A.8 jitter over every packet in arrival
  // order, duplicates included (tshark -z rtp,streams counts them in), its maximum and mean.
  std::uint64_t jitter_packets_ = 0;  ///< packets that updated the jitter
  double report_jitter_ns_ = 0;
  double last_transit_ns_ = 0;
  double jitter_max_ns_ = 0;
  double jitter_sum_ns_ = 0;
  double arrival_to_dac_ns_ = 0;
  bool have_delay_ = false;
  bool start_checked_ = false;  ///< the first render step has been taken (trim_start)
  frames_t start_skip_ = 0;     ///< frames (audio rate) still to drop at the start (trim_start)
  SourceStats stats_;
};

}  // namespace rtpnode
