// SDP parsing (rtp/sdp.hpp) on descriptions as real senders write them.
#include <gtest/gtest.h>

#include "rtp/sdp.hpp"

using namespace rtpnode;

namespace {

// PipeWire 0.3.65 module-rtp-sink's announcement (the capture).
const char* kPipeWire =
    "v=0\n"
    "o=- 1832020296 0 IN IP4 192.168.1.10\n"
    "s=PipeWire RTP Stream on host\n"
    "c=IN IP4 224.0.0.56/255\n"
    "t=0 0\n"
    "a=recvonly\n"
    "a=tool:PipeWire 0.3.65\n"
    "m=audio 47520 RTP/AVP 127\n"
    "a=rtpmap:127 L16/48000/2\n"
    "a=ptime:6\n";

// An AES67 stream as a Dante device describes it (RFC 7273 clock lines, RFC 4570 filter).
const char* kAes67 =
    "v=0\r\n"
    "o=- 1423986 1423994 IN IP4 169.254.98.63\r\n"
    "s=AOIP44-serial-1614 : 2\r\n"
    "c=IN IP4 239.65.125.63/32\r\n"
    "t=0 0\r\n"
    "a=keywds:Dante\r\n"
    "m=audio 5004 RTP/AVP 97\r\n"
    "i=2 channels: TxChan 0, TxChan 1\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:97 L24/48000/2\r\n"
    "a=ptime:0.125\r\n"
    "a=ts-refclk:ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-00-A4:0\r\n"
    "a=mediaclk:direct=0\r\n"
    "a=source-filter: incl IN IP4 239.65.125.63 169.254.98.63\r\n";

}  // namespace

TEST(Sdp, PipeWireAnnouncement) {
  std::string err;
  const auto sd = parse_sdp(kPipeWire, err);
  ASSERT_TRUE(sd) << err;
  EXPECT_EQ(sd->name, "PipeWire RTP Stream on host");
  ASSERT_EQ(sd->audio.size(), 1u);
  const SdpMedia& m = sd->audio[0];
  EXPECT_EQ(m.address, "224.0.0.56");
  EXPECT_EQ(m.ttl, 255);
  EXPECT_EQ(m.port, 47520);
  EXPECT_EQ(m.ptime_ms, 6.0);
  EXPECT_EQ(m.direction, "recvonly");  // session level, inherited
  EXPECT_EQ(m.label, "PipeWire RTP Stream on host");
  const PayloadMap map = m.payloads();
  ASSERT_NE(map.find(127), nullptr);
  EXPECT_EQ(map.find(127)->describe(), "l16/48000/2");
  EXPECT_EQ(m.codecs(), "L16/48000/2 (PT 127)");
}

TEST(Sdp, Aes67ClockLinesSourceFilterAndFractionalPtime) {
  std::string err;
  const auto sd = parse_sdp(kAes67, err);
  ASSERT_TRUE(sd) << err;
  const SdpMedia& m = sd->audio.at(0);
  EXPECT_EQ(m.address, "239.65.125.63");
  EXPECT_EQ(m.ttl, 32);
  EXPECT_EQ(m.ptime_ms, 0.125);
  EXPECT_EQ(m.ts_refclk, "ptp=IEEE1588-2008:00-1D-C1-FF-FE-12-00-A4:0");
  EXPECT_EQ(m.mediaclk, "direct=0");
  EXPECT_EQ(m.source_addresses, (std::vector<std::string>{"169.254.98.63"}));
  EXPECT_EQ(m.label, "2 channels: TxChan 0, TxChan 1");
  EXPECT_EQ(m.payloads().find(97)->codec, Codec::l24);
}

TEST(Sdp, SeveralStreamsMediaLevelConnectionRtcpAndOpusFmtp) {
  std::string err;
  const auto sd = parse_sdp(
      "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=two\r\nc=IN IP6 ff15::1234\r\nt=0 0\r\n"
      "m=audio 5004 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n"
      "a=fmtp:96 minptime=10; useinbandfec=1; sprop-stereo=0\r\na=rtcp:6000\r\n"
      "m=video 5006 RTP/AVP 98\r\nc=IN IP4 bogus\r\n"
      "m=audio 0 RTP/AVP 0\r\n"
      "m=audio 5008 RTP/AVP 0 8 3 10\r\nc=IN IP4 10.1.2.3\r\na=rtcp-mux\r\n",
      err);
  ASSERT_TRUE(sd) << err;
  ASSERT_EQ(sd->audio.size(), 3u);
  const SdpMedia& opus = sd->audio[0];
  EXPECT_EQ(opus.address, "ff15::1234");
  EXPECT_EQ(opus.fmtp.at(96), "minptime=10; useinbandfec=1; sprop-stereo=0");
  EXPECT_EQ(opus.rtcp_port, std::optional<std::uint16_t>(6000));
  // RFC 7587 §7: sprop-stereo=0 means a mono sender: decoded as one channel.
  EXPECT_EQ(opus.payloads().find(96)->channels, 1);
  EXPECT_EQ(sd->audio[1].port, 0);  // declined, kept for the caller to skip
  const SdpMedia& pcm = sd->audio[2];
  EXPECT_EQ(pcm.address, "10.1.2.3");
  EXPECT_TRUE(pcm.rtcp_mux);
  std::vector<std::string> skipped;
  const PayloadMap map = pcm.payloads(&skipped);
  EXPECT_NE(map.find(0), nullptr);
  EXPECT_NE(map.find(8), nullptr);
  // RFC 3551's L16/44100/2, off by default in --listen's map, is what an m= line listing 10 means.
  ASSERT_NE(map.find(10), nullptr);
  EXPECT_EQ(map.find(10)->clock_rate, 44100u);
  ASSERT_EQ(skipped.size(), 1u);  // GSM (PT 3) is not decoded
  EXPECT_EQ(skipped[0].rfind("3:", 0), 0u) << skipped[0];
}

TEST(Sdp, ErrorsNameTheProblem) {
  std::string err;
  EXPECT_FALSE(parse_sdp("", err));
  EXPECT_EQ(err, "no m=audio section");
  EXPECT_FALSE(parse_sdp("v=0\nm=video 5000 RTP/AVP 96\nc=IN IP4 10.0.0.1\n", err));
  EXPECT_EQ(err, "no m=audio section");
  EXPECT_FALSE(parse_sdp("v=0\nm=audio 5000 RTP/AVP 0\n", err));
  EXPECT_NE(err.find("without a connection address"), std::string::npos) << err;
  EXPECT_FALSE(parse_sdp("v=0\nc=IN IP4 host.example\nm=audio 5000 RTP/AVP 0\n", err));
  EXPECT_NE(err.find("bad connection line"), std::string::npos) << err;
  EXPECT_FALSE(parse_sdp("v=0\nc=IN IP4 10.0.0.1\nm=audio 70000 RTP/AVP 0\n", err));
  EXPECT_NE(err.find("bad m= line"), std::string::npos) << err;
  // Binary garbage is not a description, and does not crash.
  const std::string junk("\x01\x02\xff=\r\nm=audio x y\r\n\0\0", 20);
  EXPECT_FALSE(parse_sdp(junk, err));
}

// RFC 4867 §8.1: AMR's fmtp chooses the packing; what rtpnode cannot decode is refused with
// the reason, and the rest of the m= line still maps.
TEST(Sdp, AmrFmtpChoosesThePackingAndRefusesCrcAndInterleaving) {
  std::string err;
  const auto sd = parse_sdp(
      "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=call\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 96 97 98 99 18\r\n"
      "a=rtpmap:96 AMR/8000\r\na=fmtp:96 mode-set=7; octet-align=1\r\n"
      "a=rtpmap:97 AMR/8000\r\n"
      "a=rtpmap:98 AMR/8000\r\na=fmtp:98 octet-align=1;crc=1\r\n"
      "a=rtpmap:99 AMR/8000/1\r\na=fmtp:99 octet-align=1; interleaving=4\r\n",
      err);
  ASSERT_TRUE(sd) << err;
  std::vector<std::string> skipped;
  const PayloadMap map = sd->audio[0].payloads(&skipped);
  ASSERT_NE(map.find(96), nullptr);
  EXPECT_EQ(map.find(96)->codec, Codec::amr_nb);
  EXPECT_TRUE(map.find(96)->octet_aligned);
  EXPECT_EQ(map.find(96)->describe(), "amr/8000/1/octet-align");
  ASSERT_NE(map.find(97), nullptr);
  EXPECT_FALSE(map.find(97)->octet_aligned);  // bandwidth-efficient is the default
  EXPECT_EQ(map.find(98), nullptr);
  EXPECT_EQ(map.find(99), nullptr);
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_NE(skipped[0].find("crc, robust-sorting or interleaving"), std::string::npos)
      << skipped[0];
  EXPECT_EQ(map.find(18)->codec, Codec::g729);  // static, no rtpmap needed
  EXPECT_TRUE(parse_payload_format("AMR/8000/1/octet-align", err)->octet_aligned);
  EXPECT_FALSE(parse_payload_format("PCMU/8000/1/octet-align", err));
}
