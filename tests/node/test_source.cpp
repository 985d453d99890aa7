// Source wiring (jitter buffer -> decoder -> resampler -> ring) with a fake device clock and
// scripted packets: no device, no sockets, deterministic.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "node/source.hpp"
#include "rtp/codec.hpp"
#include "support/packet_builder.hpp"

using namespace rtpnode;
using namespace std::chrono_literals;

namespace {

constexpr mono_ns_t kT0 = 1'000'000'000'000;  // monotonic time of device frame 0

struct Harness {
  DeviceClock clock{48000};
  std::unique_ptr<Source> source;
  test::PacketBuilder builder;
  std::vector<std::vector<std::uint8_t>> sent;

  Harness() {
    // Device frame 0 started at kT0.
    clock.update(DevicePosition{0, 256, 0.0, 0.0107, 1}, 0.0, kT0);
  }
  Source::Params params(PayloadFormat f, std::uint8_t pt) {
    Source::Params p;
    p.id = 1;
    p.ssrc = builder.ssrc;
    p.payload_type = pt;
    p.format = f;
    p.device_rate = 48000;
    p.lead_frames = 256;
    p.playout.adaptive = false;  // fixed 40 ms unless a test says otherwise
    p.playout.start_delay_ns = 40'000'000;
    return p;
  }
  void feed(seq_t seq, rtp_ts_t ts, const std::vector<std::uint8_t>& payload, mono_ns_t arrival) {
    auto pkt = builder.build(seq, ts, payload);
    RtpHeaderView h;
    ASSERT_EQ(rtp_parse(pkt, h), RtpParseStatus::ok);
    source->on_rtp(h, arrival, clock);
    source->render(clock, arrival);
  }
  std::vector<float> drain() {
    auto* s = source->stream();
    std::vector<float> out(s->ring.size());
    s->ring.pop(out.data(), out.size());
    return out;
  }
};

std::vector<std::int16_t> noise(std::size_t n, unsigned seed) {
  std::vector<std::int16_t> v(n);
  for (auto& x : v) {
    seed = seed * 1103515245u + 12345u;
    x = static_cast<std::int16_t>(seed >> 16);
  }
  return v;
}

}  // namespace

TEST(Source, AnchorsFirstPacketLatencyPlusLeadAfterArrival) {
  Harness h;
  const PayloadFormat f{Codec::l16, 48000, 48000, 2};
  h.builder.pt = 97;
  const mono_ns_t arrival = kT0 + 100'000'000;  // device frame 4800
  h.source = std::make_unique<Source>(h.params(f, 97), arrival, h.clock);
  // frame_at(arrival + 40 ms) + 256 = 4800 + 1920 + 256
  EXPECT_EQ(h.source->stream()->start_frame, 6976);
}

TEST(Source, L16PassesThroughBitExact) {
  Harness h;
  const PayloadFormat f{Codec::l16, 48000, 48000, 2};
  h.builder.pt = 97;
  const auto pcm = noise(960 * 2 * 50, 7);
  auto enc = make_encoder(f);
  Source::Params p = h.params(f, 97);
  p.playout.drift_compensation = false;  // --drift off: no resampler at equal rates
  h.source = std::make_unique<Source>(p, kT0, h.clock);
  std::vector<std::uint8_t> payload(3840);
  std::vector<float> out;
  for (int i = 0; i < 50; ++i) {
    std::vector<std::int16_t> chunk(pcm.begin() + i * 1920, pcm.begin() + (i + 1) * 1920);
    ASSERT_EQ(enc->encode(chunk, 960, payload), 3840);
    h.feed(static_cast<seq_t>(1000 + i), static_cast<rtp_ts_t>(5000 + i * 960), payload, kT0 + i * 20'000'000);
    const auto got = h.drain();  // the device consumes as it goes
    out.insert(out.end(), got.begin(), got.end());
  }
  ASSERT_EQ(out.size(), pcm.size());
  for (std::size_t i = 0; i < pcm.size(); ++i) ASSERT_EQ(out[i], pcm[i] / 32768.0f) << i;
  const SourceStats st = h.source->stats();
  EXPECT_EQ(st.packets_received, 50u);
  EXPECT_EQ(st.packets_lost, 0);
  EXPECT_EQ(st.frames_concealed, 0u);
}

TEST(Source, ResamplesPcmuToDeviceRate) {
  Harness h;
  const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
  h.source = std::make_unique<Source>(h.params(f, 0), kT0, h.clock);
  std::vector<std::uint8_t> payload(160, 0x55);
  for (int i = 0; i < 10; ++i) h.feed(static_cast<seq_t>(i), static_cast<rtp_ts_t>(i * 160), payload, kT0 + i * 20'000'000);
  const auto out = h.drain();
  // 1600 frames at 8 kHz = 9600 at 48 kHz, less the resampler's filter delay still held back.
  EXPECT_GT(out.size(), 9400u);
  EXPECT_LE(out.size(), 9600u);
}

TEST(Source, ConcealsLossAtTheDeadlineAndCountsIt) {
  Harness h;
  const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
  h.source = std::make_unique<Source>(h.params(f, 0), kT0, h.clock);
  std::vector<std::uint8_t> payload(160, 0x20);
  for (int i = 0; i < 6; ++i) {
    if (i == 4) continue;  // lost
    h.feed(static_cast<seq_t>(i), static_cast<rtp_ts_t>(i * 160), payload, kT0 + i * 20'000'000);
  }
  // Packet 4's deadline is 80 ms (its RTP time) + 40 ms latency after the first arrival, less
  // the resampler's output latency (speexdsp quality 4, 8 -> 48 kHz: 192 frames = 4 ms), which
  // the source renders ahead to cover: at 115 ms it may still come, at 121 ms it is concealed.
  EXPECT_EQ(h.source->stats().frames_concealed, 0u);
  h.source->render(h.clock, kT0 + 115'000'000);
  EXPECT_EQ(h.source->stats().frames_concealed, 0u);
  h.source->render(h.clock, kT0 + 121'000'000);
  const SourceStats st = h.source->stats();
  EXPECT_EQ(st.frames_concealed, 160u);
  EXPECT_EQ(st.concealment_events, 1u);
  EXPECT_EQ(st.packets_lost, 1);
  EXPECT_EQ(st.packets_received, 5u);
}

TEST(Source, CountsDuplicatesAndLatePackets) {
  Harness h;
  const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
  h.source = std::make_unique<Source>(h.params(f, 0), kT0, h.clock);
  std::vector<std::uint8_t> payload(160, 0x20);
  h.feed(0, 0, payload, kT0);
  h.feed(0, 0, payload, kT0 + 1'000'000);  // duplicate
  h.feed(2, 320, payload, kT0 + 40'000'000);
  h.source->render(h.clock, kT0 + 100'000'000);  // packet 1's deadline (20 ms + 40 ms) passed
  h.feed(1, 160, payload, kT0 + 101'000'000);    // late
  const SourceStats st = h.source->stats();
  EXPECT_EQ(st.packets_duplicate, 1u);
  EXPECT_EQ(st.packets_late, 1u);
  EXPECT_EQ(st.packets_received, 3u);
  EXPECT_EQ(st.packets_lost, 0);
}

TEST(Source, PlaysSilenceNotConcealmentAfterTheStreamStops) {
  Harness h;
  const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
  h.source = std::make_unique<Source>(h.params(f, 0), kT0, h.clock);
  std::vector<std::uint8_t> payload(160, 0x20);
  h.feed(0, 0, payload, kT0);
  for (int ms = 10; ms <= 1000; ms += 10) {
    h.source->render(h.clock, kT0 + ms * 1'000'000);
    h.drain();
  }
  const SourceStats st = h.source->stats();
  EXPECT_EQ(st.frames_concealed, 800u);  // 100 ms at 8 kHz
  EXPECT_GT(st.frames_silent, 6000u);
}

TEST(Source, ResyncsWhenSenderRestartsWithNewNumbering) {
  Harness h;
  const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
  h.source = std::make_unique<Source>(h.params(f, 0), kT0, h.clock);
  std::vector<std::uint8_t> payload(160, 0x20);
  for (int i = 0; i < 50; ++i)
    h.feed(static_cast<seq_t>(30000 + i), static_cast<rtp_ts_t>(900000 + i * 160), payload, kT0 + i * 20'000'000);
  // Restart: sequence numbers and timestamps start over far behind.
  for (int i = 0; i < 50; ++i)
    h.feed(static_cast<seq_t>(100 + i), static_cast<rtp_ts_t>(1000 + i * 160), payload, kT0 + (50 + i) * 20'000'000);
  h.source->render(h.clock, kT0 + 100 * 20'000'000);
  const SourceStats st = h.source->stats();
  EXPECT_EQ(st.resyncs, 1u);
  EXPECT_EQ(st.packets_received, 100u);
  EXPECT_LE(st.packets_late, 3u);  // at most the packets that revealed the restart
  EXPECT_EQ(st.packets_lost, 0);
}
