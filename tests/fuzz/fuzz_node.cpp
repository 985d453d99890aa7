// libFuzzer target, structure-aware: a sequence of RTP and RTCP datagrams against two sources
// (PCMU and Opus) on one NTP timeline, a real Mixer whose audio-thread step runs between them,
// and a fake clock. This is the path of issue #16's use-after-free (spoofed SRs re-placing a
// source until its rings were freed under queued mixer commands); ASan catches any such touch.
//
// Input: records [kind:1][dt_ms:1][len:1][bytes...]. kind % 4: 0 RTP to source A's SSRC,
// 1 RTP to source B's, 2 RTCP (SR/BYE bytes as given; SR mapping applied to both sources),
// 3 time only. Before each record the clock advances dt_ms and the mixer plays the frames due.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "node/device_clock.hpp"
#include "node/mixer.hpp"
#include "node/source.hpp"
#include "node/sync_timeline.hpp"
#include "support/source_params.hpp"
#include "rtp/ortp_log.hpp"
#include "rtp/rtcp.hpp"
#include "rtp/rtp_header.hpp"

using namespace rtpnode;

namespace {

constexpr mono_ns_t kT0 = 1'000'000'000'000;
constexpr std::uint32_t kSsrcA = 0xa, kSsrcB = 0xb;

Source::Params params(std::uint32_t id, std::uint32_t ssrc, PayloadFormat f, std::uint8_t pt,
                      Mixer& m, SyncTimeline& tl) {
  Source::Params p = test::source_params(id, ssrc, f, pt, &m, &tl);
  p.playout.adaptive = id == 1;  // one adaptive, one fixed
  p.playout.start_delay_ns = 40'000'000;
  p.playout.max_delay_ns = 500'000'000;
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool routed = (ortp_log_route(), true);
  (void)routed;
  Mixer mixer(2, (Source::kMaxStreams + 1) * 2, 240);
  SyncTimeline timeline;
  DeviceClock clock{48000};
  clock.update(DevicePosition{0, 256, 0.0, 0.0107, 1}, 0.0, kT0);
  std::unique_ptr<Source> a, b;
  std::vector<float> out(2 * 4800);
  mono_ns_t now = kT0;
  frames_t played = 0;
  std::size_t pos = 0;
  while (pos + 3 <= size) {
    const std::uint8_t kind = data[pos] % 4;
    now += static_cast<mono_ns_t>(data[pos + 1]) * 1'000'000;
    const std::size_t len = std::min<std::size_t>(data[pos + 2], size - pos - 3);
    const std::span<const std::uint8_t> bytes(data + pos + 3, len);
    pos += 3 + len;
    // The audio thread: play every frame due by `now`, in blocks of up to 4800 frames.
    const frames_t due = clock.frame_at(now);
    while (played < due) {
      const frames_t n = std::min<frames_t>(due - played, 4800);
      mixer.process(out.data(), n, {});
      played += n;
    }
    mixer.flush_deferred();
    if (kind <= 1) {
      // An RTP datagram: the header's SSRC is forced to the target source's, so that mutated
      // packets reach the sources instead of being dropped at the demux.
      std::vector<std::uint8_t> pkt(bytes.begin(), bytes.end());
      if (pkt.size() >= 12) {
        const std::uint32_t ssrc = kind == 0 ? kSsrcA : kSsrcB;
        for (int i = 0; i < 4; ++i)
          pkt[8 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ssrc >> (24 - 8 * i));
      }
      RtpHeaderView h;
      if (rtp_parse(pkt, h) != RtpParseStatus::ok) continue;
      std::unique_ptr<Source>& s = kind == 0 ? a : b;
      if (!s) {
        const PayloadFormat f = kind == 0 ? PayloadFormat{Codec::pcmu, 8000, 8000, 1}
                                          : PayloadFormat{Codec::opus, 48000, 48000, 2};
        s = std::make_unique<Source>(
            params(kind == 0 ? 1 : 2, h.ssrc, f, h.payload_type, mixer, timeline), now, clock);
      }
      if (h.payload_type == s->params().payload_type) s->on_rtp(h, now, clock);
    } else if (kind == 2) {
      RtcpCompound c;
      if (rtcp_parse(bytes, c) != RtcpParseStatus::ok) continue;
      for (const RtcpSenderReport& sr : c.sender_reports)
        for (Source* s : {a.get(), b.get()})
          if (s) s->on_sender_report(ntp64_to_ns(sr.ntp), sr.rtp_ts);
      if (!c.byes.empty() && a) a->on_bye();
    }
    for (Source* s : {a.get(), b.get()}) {
      if (!s) continue;
      s->render(clock, now);
      if (!timeline.on()) (void)s->define_timeline(timeline);
    }
  }
  // Tear down as the node does: leave, let the audio thread detach, free only when releasable.
  for (Source* s : {a.get(), b.get()})
    if (s) s->leave(clock.frame_at(now));
  for (int i = 0; i < 2000; ++i) {
    const bool done = (!a || a->drained()) && (!b || b->drained());
    if (done) break;
    mixer.process(out.data(), 480, {});
    mixer.flush_deferred();
    for (Source* s : {a.get(), b.get()})
      if (s) s->render(clock, now);
  }
  if ((a && !a->drained()) || (b && !b->drained())) __builtin_trap();  // a source that never drains
  return 0;
}
