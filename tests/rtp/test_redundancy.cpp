// RFC 2198 redundant audio: the payload's block layout, the payload-type mapping (flag and
// SDP), and the decoder that rebuilds a lost packet from the next packet's redundant block.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "rtp/codec.hpp"
#include "rtp/payload_format.hpp"
#include "rtp/redundancy.hpp"
#include "rtp/sdp.hpp"

using namespace rtpnode;

namespace {

std::vector<std::uint8_t> bytes(std::initializer_list<int> v) {
  std::vector<std::uint8_t> out;
  for (int b : v) out.push_back(static_cast<std::uint8_t>(b));
  return out;
}

/// A RED payload of `redundant` (oldest first) and `primary`, built by hand from RFC 2198 §3's
/// figure (not with build_red).
std::vector<std::uint8_t> red_payload(
    const std::vector<std::tuple<int, int, std::vector<std::uint8_t>>>& redundant, int primary_pt,
    const std::vector<std::uint8_t>& primary) {
  std::vector<std::uint8_t> out;
  for (const auto& [pt, offset, data] : redundant) {
    // F=1 | block PT (7) | timestamp offset (14) | block length (10)
    const std::uint32_t word = 0x80000000u | (static_cast<std::uint32_t>(pt) << 24) |
                               (static_cast<std::uint32_t>(offset) << 10) |
                               static_cast<std::uint32_t>(data.size());
    for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<std::uint8_t>(word >> shift));
  }
  out.push_back(static_cast<std::uint8_t>(primary_pt));
  for (const auto& r : redundant)
    out.insert(out.end(), std::get<2>(r).begin(), std::get<2>(r).end());
  out.insert(out.end(), primary.begin(), primary.end());
  return out;
}

std::vector<std::uint8_t> pcmu_tone(int packet, int frames = 160) {
  std::vector<std::int16_t> pcm(static_cast<std::size_t>(frames));
  for (int i = 0; i < frames; ++i)
    pcm[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(
        12000 * std::sin(2 * M_PI * 440.0 * (packet * frames + i) / 8000.0));
  auto enc = make_encoder(PayloadFormat{Codec::pcmu, 8000, 8000, 1});
  std::vector<std::uint8_t> out(static_cast<std::size_t>(frames));
  EXPECT_EQ(enc->encode(pcm, frames, out), frames);
  return out;
}

}  // namespace

TEST(Redundancy, ParsesRfc2198BlocksInOrder) {
  // Two redundant blocks (PT 0, 320 and 160 ticks back) and a PCMU primary.
  const auto p =
      red_payload({{0, 320, bytes({1, 2, 3})}, {0, 160, bytes({4, 5})}}, 0, bytes({6, 7, 8, 9}));
  const auto red = parse_red(p);
  ASSERT_TRUE(red);
  ASSERT_EQ(red->redundant_count, 2u);
  EXPECT_EQ(red->redundant[0].pt, 0);
  EXPECT_EQ(red->redundant[0].ts_offset, 320);
  EXPECT_EQ(std::vector<std::uint8_t>(red->redundant[0].data.begin(), red->redundant[0].data.end()),
            bytes({1, 2, 3}));
  EXPECT_EQ(red->redundant[1].ts_offset, 160);
  EXPECT_EQ(std::vector<std::uint8_t>(red->redundant[1].data.begin(), red->redundant[1].data.end()),
            bytes({4, 5}));
  EXPECT_EQ(red->primary.pt, 0);
  EXPECT_EQ(std::vector<std::uint8_t>(red->primary.data.begin(), red->primary.data.end()),
            bytes({6, 7, 8, 9}));
  // The largest offset and length the fields hold.
  const auto big = red_payload({{127, 16383, std::vector<std::uint8_t>(1023, 0xaa)}}, 96, {});
  const auto b = parse_red(big);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->redundant[0].pt, 127);
  EXPECT_EQ(b->redundant[0].ts_offset, 16383);
  EXPECT_EQ(b->redundant[0].data.size(), 1023u);
  EXPECT_EQ(b->primary.pt, 96);
  EXPECT_TRUE(b->primary.data.empty());  // a zero-length primary is allowed
  // build_red writes the same bytes.
  std::vector<std::uint8_t> built(64);
  const std::array<std::uint8_t, 3> d1{1, 2, 3};
  const std::array<std::uint8_t, 2> d2{4, 5};
  const std::array<std::uint8_t, 4> d3{6, 7, 8, 9};
  const std::array<RedBlock, 2> blocks{RedBlock{0, 320, d1}, RedBlock{0, 160, d2}};
  const auto n = build_red(blocks, RedBlock{0, 0, d3}, built);
  ASSERT_TRUE(n);
  built.resize(*n);
  EXPECT_EQ(built, p);
}

TEST(Redundancy, MalformedPayloadsAreRefused) {
  EXPECT_FALSE(parse_red({}));
  EXPECT_FALSE(parse_red(bytes({0x80, 0x00})));                       // a header cut short
  EXPECT_FALSE(parse_red(bytes({0x80, 0x00, 0x00, 0x05, 0x00, 1})));  // block past the end
  EXPECT_FALSE(parse_red(bytes({0x80, 0x00, 0x00, 0x00})));           // no primary header
  std::vector<std::uint8_t> many;
  for (std::size_t i = 0; i <= kMaxRedundantBlocks; ++i) many.insert(many.end(), {0x80, 0, 0, 0});
  many.push_back(0);
  EXPECT_FALSE(parse_red(many));  // more redundant blocks than kMaxRedundantBlocks
  many.erase(many.begin(), many.begin() + 4);
  EXPECT_TRUE(parse_red(many));  // exactly kMaxRedundantBlocks
  // Out-of-range fields and a short buffer are refused by build_red.
  std::vector<std::uint8_t> out(8);
  const std::array<std::uint8_t, 1> d{1};
  EXPECT_FALSE(build_red(std::array<RedBlock, 1>{RedBlock{0, 16384, d}}, RedBlock{0, 0, d}, out));
  EXPECT_FALSE(build_red(std::array<RedBlock, 1>{RedBlock{128, 0, d}}, RedBlock{0, 0, d}, out));
  EXPECT_FALSE(build_red(std::array<RedBlock, 1>{RedBlock{0, 0, d}}, RedBlock{0, 0, d},
                         std::span<std::uint8_t>(out).first(6)));
}

TEST(Redundancy, PayloadTypeFlagAndSdpMapping) {
  PayloadMap m;
  std::string err;
  ASSERT_TRUE(m.apply("98=pcmu/8000/1/red=0", err)) << err;
  const PayloadFormat* f = m.find(98);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->codec, Codec::pcmu);
  EXPECT_TRUE(f->red);
  EXPECT_EQ(f->red_block_pt, 0);
  EXPECT_EQ(f->describe(), "pcmu/8000/1/red=0");
  EXPECT_GE(f->max_payload_bytes(20), 3u * 160u + 9u);  // primary + two redundant blocks
  ASSERT_TRUE(m.apply("99=opus/48000/2/red=111", err)) << err;
  EXPECT_EQ(m.find(99)->describe(), "opus/48000/2/red=111");
  EXPECT_FALSE(m.apply("98=pcmu/8000/1/red=128", err));
  EXPECT_NE(err.find("red=0..127"), std::string::npos) << err;
  EXPECT_FALSE(m.apply("98=telephone-event/8000/1/red=101", err));

  // SDP: a=rtpmap:PT red/CLOCK with a=fmtp:PT P/P names the blocks' format (RFC 2198 §5).
  const auto sd = parse_sdp(
      "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=call\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 98 63 111 0 100 102\r\n"
      "a=rtpmap:98 red/8000\r\na=fmtp:98 0/0\r\n"
      "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n"
      "a=rtpmap:111 opus/48000/2\r\n"
      "a=rtpmap:100 red/8000\r\n"
      "a=rtpmap:102 red/8000\r\na=fmtp:102 77/77\r\n",
      err);
  ASSERT_TRUE(sd) << err;
  std::vector<std::string> skipped;
  const PayloadMap map = sd->audio[0].payloads(&skipped);
  ASSERT_NE(map.find(98), nullptr);
  EXPECT_EQ(map.find(98)->describe(), "pcmu/8000/1/red=0");
  ASSERT_NE(map.find(63), nullptr);
  EXPECT_EQ(map.find(63)->describe(), "opus/48000/2/red=111");
  EXPECT_EQ(map.find(100), nullptr);  // no fmtp: the blocks' format is unknown
  EXPECT_EQ(map.find(102), nullptr);  // blocks of an unmapped payload type
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_NE(skipped[0].find("RFC 2198"), std::string::npos) << skipped[0];
  EXPECT_NE(skipped[1].find("not mapped"), std::string::npos) << skipped[1];
}

TEST(Redundancy, DecoderPlaysThePrimaryAndRebuildsALostPacketFromTheNext) {
  // Packets 0..3 of a PCMU tone as RED with distance 1 (as GStreamer's rtpredenc distance=1
  // and Asterisk send it): packet k carries k's audio as primary and k-1's 160 ticks back.
  const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
  PayloadFormat rf = f;
  rf.red = true;
  rf.red_block_pt = 0;
  std::vector<std::vector<std::uint8_t>> pcmu, red;
  for (int k = 0; k < 4; ++k) {
    pcmu.push_back(pcmu_tone(k));
    red.push_back(k == 0 ? red_payload({}, 0, pcmu[0])
                         : red_payload({{0, 160, pcmu[static_cast<std::size_t>(k - 1)]}}, 0,
                                       pcmu[static_cast<std::size_t>(k)]));
  }
  auto plain = make_decoder(f);
  auto dec = make_decoder(rf);
  EXPECT_FALSE(dec->carries_fec(red[0]));
  EXPECT_TRUE(dec->carries_fec(red[1]));
  EXPECT_EQ(dec->frames_in(red[1]), 160);
  std::vector<float> want(160), got(160);
  // Packet 0 plays; packet 1 is lost and rebuilt from packet 2's redundancy; 2 and 3 play:
  // the output is what a plain decoder makes of all four packets, sample for sample.
  for (int k = 0; k < 4; ++k) {
    ASSERT_EQ(plain->decode(pcmu[static_cast<std::size_t>(k)], want), 160);
    if (k == 1) {
      ASSERT_EQ(dec->decode_fec(red[2], 160, got), 160);
    } else {
      ASSERT_EQ(dec->decode(red[static_cast<std::size_t>(k)], got), 160);
    }
    for (std::size_t i = 0; i < 160; ++i) ASSERT_EQ(got[i], want[i]) << "packet " << k << " " << i;
  }
  // A span the redundancy does not cover exactly, or a packet without redundancy: refused,
  // the caller conceals.
  EXPECT_EQ(dec->decode_fec(red[2], 80, got), -1);
  EXPECT_EQ(dec->decode_fec(red[2], 320, got), -1);
  EXPECT_EQ(dec->decode_fec(red[0], 160, got), -1);
  // Blocks of another payload type are not this codec's: skipped (a redundant one) or not
  // played (a primary: the packet counts as undecodable).
  const auto other = red_payload({{8, 160, pcmu[0]}}, 0, pcmu[1]);
  EXPECT_FALSE(dec->carries_fec(other));
  EXPECT_EQ(dec->decode_fec(other, 160, got), -1);
  EXPECT_EQ(dec->decode(other, got), 160);
  EXPECT_EQ(dec->decode(red_payload({}, 13, bytes({40})), got), -1);
  EXPECT_EQ(dec->decode(bytes({0x80, 0}), got), -1);  // malformed
  EXPECT_EQ(dec->frames_in(bytes({0x80, 0})), -1);
  // Concealment is the blocks' codec's (spandsp's G.711 PLC continues the tone, not silence).
  ASSERT_EQ(dec->conceal(160, got), 160);
  double energy = 0;
  for (float v : got) energy += double{v} * v;
  EXPECT_GT(energy, 1.0);
}

TEST(Redundancy, G722RedundancyOffsetIsInRtpTicks) {
  // G.722's RTP clock is 8000 Hz for 16 kHz audio (RFC 3551 §4.5.2): 20 ms is 160 ticks and
  // 320 frames; the block 160 ticks back rebuilds 320 lost frames.
  const PayloadFormat f{Codec::g722, 8000, 16000, 1};
  PayloadFormat rf = f;
  rf.red = true;
  rf.red_block_pt = 9;
  auto enc = make_encoder(f);
  std::vector<std::int16_t> pcm(320);
  for (std::size_t i = 0; i < pcm.size(); ++i)
    pcm[i] = static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * 1000.0 * i / 16000.0));
  std::vector<std::uint8_t> g722(160);
  ASSERT_EQ(enc->encode(pcm, 320, g722), 160);
  auto dec = make_decoder(rf);
  std::vector<float> out(320);
  EXPECT_EQ(dec->decode_fec(red_payload({{9, 160, g722}}, 9, g722), 320, out), 320);
  EXPECT_EQ(dec->decode_fec(red_payload({{9, 320, g722}}, 9, g722), 320, out), -1);
}
