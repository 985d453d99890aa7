#include "tools/rtpsend/options.hpp"

#include <cmath>

namespace rtpnode::rtpsend {

namespace {

/// "DUR@AT" (e.g. 5s@20s) for --pause.
bool parse_pause(const std::string& text, std::int64_t& dur, std::int64_t& at, std::string& err) {
  const auto sep = text.find('@');
  if (sep == std::string::npos) {
    err = "expected DURATION@TIME, e.g. 5s@20s";
    return false;
  }
  auto d = parse_duration(text.substr(0, sep), err), a = parse_duration(text.substr(sep + 1), err);
  if (!d || !a) return false;
  dur = d->count();
  at = a->count();
  return true;
}

}  // namespace

void add_options(CLI::App& app, Options& o) {
  app.add_option(
         "FILE", o.files,
         "Audio files (any format libsndfile reads); each becomes one stream with its own SSRC")
      ->check(CLI::ExistingFile);
  app.add_option("--dest", o.dests,
                 "Destination ADDR:PORT ([IPv6]:PORT); RTCP goes to PORT+1. One for all streams, "
                 "or one per FILE")
      ->required()
      ->allow_extra_args(false);
  app.add_option(
         "--codec", o.codec,
         "l16 | l24 | pcmu | pcma | g722 | g729 | amr | opus (l24 carries the 16-bit input "
         "exactly, RFC 3190; g729 is G.729A via bcg729, PT 18; amr is AMR-NB 12.2 kbit/s via "
         "opencore-amrnb, RFC 4867, PT 96)")
      ->check(CLI::IsMember({"l16", "l24", "pcmu", "pcma", "g722", "g729", "amr", "opus"}))
      ->capture_default_str();
  app.add_option("--ptime", o.ptime, "Packet duration (Opus: 2.5, 5, 10, 20, 40 or 60 ms)")
      ->capture_default_str();
  app.add_option("--pt", o.pt, "RTP payload type (default: the static one, else 96)")
      ->check(CLI::Range(0, 127));
  o.ssrc_option = app.add_option("--ssrc", o.ssrc,
                                 "SSRC of the first stream (others: +1, +2 ...; default: random)");
  app.add_option("--channels", o.channels,
                 "Channels to send (default: the input's; G.711/G.722: 1; Opus: 1 or 2)")
      ->check(CLI::Range(1, 8));
  app.add_option("--bitrate", o.bitrate, "Opus bitrate in bit/s (default: libopus' choice)")
      ->check(CLI::Range(6000, 510000));
  app.add_option("--complexity", o.complexity, "Opus encoder complexity 0..10")
      ->check(CLI::Range(0, 10))
      ->capture_default_str();
  app.add_flag("--fec", o.fec, "Opus in-band FEC (LBRR)");
  app.add_option("--red", o.red_pt,
                 "Send RFC 2198 redundant audio on this payload type: each packet repeats the one "
                 "before it (distance 1) after its own audio, whose blocks keep --pt")
      ->check(CLI::Range(0, 127));
  app.add_option("--expected-loss", o.expected_loss,
                 "Loss the Opus FEC is sized for, e.g. 10% (implies --fec)");
  app.add_flag("--dtx", o.dtx,
               "Opus DTX, or G.729 Annex B (VAD, 2-byte SID frames; needs --ptime 10ms): "
               "frames of silence are not sent (sequence numbers stay contiguous, the "
               "timestamp jumps, the marker bit flags the next talkspurt)");
  app.add_flag("--amr-octet-align", o.amr_octet_align,
               "AMR: the octet-aligned mode (RFC 4867 §4.4.1) instead of bandwidth-efficient");
  app.add_option("--tone", o.tone,
                 "Send a sine instead of a file: frequency, e.g. 1kHz or 440 (-6 dBFS)");
  app.add_option("--clicks", o.clicks, "Send impulses instead of a file: rate, e.g. 1/s or 10/s");
  app.add_flag("--silence", o.silence, "Send digital silence instead of a file");
  app.add_option("--raw-format", o.raw_format,
                 "FILEs are headerless PCM in this format: FORMAT/RATE/CHANNELS, FORMAT s16le, "
                 "s16be, s24le or f32le");
  app.add_flag("--loop", o.loop,
               "Start the input over at its end (timestamps continue); signals always loop");
  app.add_option("--duration", o.duration,
                 "Stop after this long (e.g. 10s); signals default to 10s");
  app.add_option("--start-at", o.start_at,
                 "Start at a time: +DURATION from now (e.g. +2s) or a Unix time in seconds "
                 "(e.g. 1795000000.5), so several senders can start together");
  app.add_option("--sdp", o.sdp,
                 "Write an SDP file describing the streams (RFC 4566; ffmpeg and VLC read it)");
  app.add_flag("--raw", o.raw,
               "Send headerless s16le PCM (no RTP header), like the seed sender: 8000 Hz mono "
               "unless --channels says otherwise, 320-byte datagrams every 20 ms");
  app.add_option("--live-epoch", o.live_epoch,
                 "Treat the input as a live feed whose first frame was captured at this Unix time "
                 "(s): streaming "
                 "starts at the feed's current position, so senders started at different moments "
                 "carry the same "
                 "instant at the same NTP time (their RTCP SRs say so)");
  app.add_flag("--no-rtcp", o.no_rtcp,
               "Send no RTCP at all (no Sender Report, no BYE), as many AES67 senders do");
  app.add_option("--ts-refclk", o.ts_refclk,
                 "RTP timestamps follow a reference clock (RFC 7273 a=mediaclk:direct): ntp (this "
                 "machine's wall clock, epoch 1900) or ptp (the same as TAI, epoch 1970); the "
                 "--sdp file says so with a=ts-refclk and the offset")
      ->check(CLI::IsMember({"ntp", "ptp"}));
  app.add_flag("--no-bye", o.no_bye,
               "Do not send RTCP BYE at the end (the receiver then times the stream out)");
  app.add_option("--rtcp-interval", o.rtcp_interval,
                 "Interval of RTCP Sender Reports (RFC 3550 §6.2 suggests 5 s)")
      ->capture_default_str();
  app.add_option("--ttl", o.ttl, "Multicast TTL / hop limit")
      ->check(CLI::Range(0, 255))
      ->capture_default_str();
  app.add_option("--iface", o.iface, "Interface name for outgoing multicast (e.g. eth0)");
  app.add_option("--stats-json", o.stats_json, "Write a summary as JSON at the end");
  app.add_option("--seed", o.seed, "Seed of the fault injector (same seed, same faults)")
      ->capture_default_str();
  app.add_option("--loss", o.loss_s, "Independent packet loss, e.g. 5%");
  app.add_option("--burst-loss", o.burst_s,
                 "Gilbert burst loss P,R: P(good->bad), P(bad->good), e.g. 1%,25% "
                 "(loss P/(P+R), mean burst 1/R packets)");
  app.add_option(
      "--jitter", o.jitter_s,
      "Extra delay per packet: uniform:MIN-MAX (e.g. uniform:0-40ms) or pareto:SCALE,SHAPE");
  app.add_option("--reorder", o.reorder_s,
                 "Probability a packet is held back 1.5 ptime (the next one overtakes it)");
  app.add_option("--duplicate", o.duplicate_s, "Probability a packet is sent twice");
  app.add_option("--skew-ppm", o.skew_ppm,
                 "Sender clock error: audio leaves at (1 + N/1e6) x real time while RTP "
                 "timestamps advance nominally")
      ->check(CLI::Range(-100000.0, 100000.0));
  app.add_option("--ssrc-change-at", o.ssrc_change_at,
                 "At this time, restart as a new sender: new SSRC, sequence "
                 "number and timestamp");
  app.add_option("--seq-jump-at", o.seq_jump_at,
                 "At this time, jump the sequence number by +10000");
  app.add_option("--ts-jump-at", o.ts_jump_at,
                 "At this time, jump the RTP timestamp by +60 s of ticks");
  app.add_option("--pause", o.pause,
                 "DUR@TIME: send nothing for DUR from TIME (e.g. 5s@20s): the sender is paused, "
                 "its sequence numbers continue and its timestamps jump, as with DTX");
  app.add_option("--trace-out", o.trace_out,
                 "Write one line per packet: seq rtp_ts send_ns fate (fate: sent, lost, "
                 "reordered, duplicated, dtx, paused); stream N>0 writes FILE.N");
}

std::optional<Plan> make_plan(const Options& o, std::string& error) {
  Plan p;
  std::string err;
  auto fail = [&](const std::string& m) -> std::optional<Plan> {
    error = m;
    return std::nullopt;
  };
  p.signals = !o.tone.empty() + !o.clicks.empty() + o.silence;
  if (p.signals > 1) return fail("give one of --tone, --clicks, --silence");
  if (p.signals == 1 && !o.files.empty())
    return fail("give input FILEs or a test signal, not both");
  if (p.signals == 0 && o.files.empty())
    return fail("nothing to send: give a FILE, or --tone, --clicks or --silence");
  p.streams = p.signals ? 1 : o.files.size();
  if (o.dests.size() != 1 && o.dests.size() != p.streams)
    return fail("give one --dest for all streams or one per FILE (" + std::to_string(p.streams) +
                ")");
  for (const auto& d : o.dests) {
    auto spec = parse_listen(d, err);
    if (!spec) return fail("--dest: " + err);
    p.dests.push_back(*spec);
  }
  auto ptime = parse_duration(o.ptime, err);
  if (!ptime || ptime->count() <= 0)
    return fail("--ptime: " + (err.empty() ? std::string("must be > 0") : err));
  p.ptime = *ptime;
  if (!o.duration.empty()) {
    p.duration = parse_duration(o.duration, err);
    if (!p.duration) return fail("--duration: " + err);
  } else if (p.signals) {
    p.duration = std::chrono::seconds(10);
  }
  auto optional_time = [&](const std::string& text, const char* flag, std::int64_t& out) {
    if (text.empty()) return true;
    auto d = parse_duration(text, err);
    if (!d) {
      err = std::string(flag) + ": " + err;
      return false;
    }
    out = d->count();
    return true;
  };
  if (!optional_time(o.ssrc_change_at, "--ssrc-change-at", p.ssrc_change_at) ||
      !optional_time(o.seq_jump_at, "--seq-jump-at", p.seq_jump_at) ||
      !optional_time(o.ts_jump_at, "--ts-jump-at", p.ts_jump_at))
    return fail(err);
  if (!o.pause.empty() && !parse_pause(o.pause, p.pause_dur, p.pause_at, err))
    return fail("--pause: " + err);

  FaultConfig& faults = p.faults;
  faults.seed = o.seed;
  if (!o.loss_s.empty()) {
    auto v = parse_probability(o.loss_s, err);
    if (!v) return fail("--loss: " + err);
    faults.loss = *v;
  }
  if (!o.burst_s.empty()) {
    const auto comma = o.burst_s.find(',');
    auto p = comma == std::string::npos ? std::nullopt
                                        : parse_probability(o.burst_s.substr(0, comma), err);
    auto r = comma == std::string::npos ? std::nullopt
                                        : parse_probability(o.burst_s.substr(comma + 1), err);
    if (!p || !r || *r <= 0)
      return fail("--burst-loss: expected P,R with R > 0, e.g. 1%,25%" +
                  (err.empty() ? "" : ": " + err));
    faults.burst_p = *p;
    faults.burst_r = *r;
  }
  if (!o.jitter_s.empty()) {
    auto j = parse_jitter(o.jitter_s, err);
    if (!j) return fail("--jitter: " + err);
    faults.jitter = *j;
  }
  if (!o.reorder_s.empty()) {
    auto v = parse_probability(o.reorder_s, err);
    if (!v) return fail("--reorder: " + err);
    faults.reorder = *v;
  }
  if (!o.duplicate_s.empty()) {
    auto v = parse_probability(o.duplicate_s, err);
    if (!v) return fail("--duplicate: " + err);
    faults.duplicate = *v;
  }
  EncoderOptions& eo = p.encoder;
  eo = EncoderOptions{o.bitrate, o.complexity, o.fec, 0, o.dtx};
  if (!o.expected_loss.empty()) {
    auto v = parse_probability(o.expected_loss, err);
    if (!v) return fail("--expected-loss: " + err);
    eo.opus_fec = true;
    eo.opus_expected_loss = static_cast<int>(std::lround(*v * 100));
  }
  if (o.amr_octet_align && o.codec != "amr") return fail("--amr-octet-align is an AMR option");
  if (o.codec == "g729" || o.codec == "amr") {
    eo.g729_annex_b = eo.opus_dtx;
    eo.opus_dtx = false;
  }
  if (eo.opus_fec && o.codec != "opus") return fail("--fec and --expected-loss are Opus options");
  if (eo.opus_dtx && o.codec != "opus") return fail("--dtx is an Opus, G.729 and AMR option");
  const auto sr_interval = parse_duration(o.rtcp_interval, err);
  if (!sr_interval || sr_interval->count() < 100'000'000)
    return fail("--rtcp-interval: at least 100ms" + (err.empty() ? "" : ": " + err));
  p.sr_interval = *sr_interval;
  return p;
}

}  // namespace rtpnode::rtpsend
