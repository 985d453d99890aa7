#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "rtp/sap.hpp"

using namespace rtpnode;

namespace {

const std::string kSdp =
    "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=Studio A\r\nc=IN IP4 239.1.2.3/32\r\nt=0 0\r\n"
    "m=audio 5004 RTP/AVP 127\r\na=rtpmap:127 L16/48000/2\r\n";

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

TEST(Sap, AnnouncementRoundTripsWithItsHashOriginAndDescription) {
  const std::string packet = build_sap(false, 0xBEEF, "10.0.0.5", kSdp);
  ASSERT_FALSE(packet.empty());
  EXPECT_EQ(static_cast<std::uint8_t>(packet[0]), 0x20) << "V=1, IPv4, announcement";
  std::string err;
  const auto m = parse_sap(bytes_of(packet), err);
  ASSERT_TRUE(m) << err;
  EXPECT_FALSE(m->deletion);
  EXPECT_EQ(m->msg_id_hash, 0xBEEF);
  EXPECT_EQ(m->origin, "10.0.0.5");
  EXPECT_EQ(m->payload_type, "application/sdp");
  EXPECT_EQ(m->sdp, kSdp);
  const auto d = parse_sap(bytes_of(build_sap(true, 0xBEEF, "10.0.0.5", kSdp)), err);
  ASSERT_TRUE(d) << err;
  EXPECT_TRUE(d->deletion);
  EXPECT_TRUE(build_sap(false, 1, "not an address", kSdp).empty());
}

TEST(Sap, Ipv6OriginAuthenticationDataAndAMissingPayloadTypeAreRead) {
  // RFC 2974 §3: A=1 (16-byte origin), auth len 1 word (skipped), no payload type: the payload
  // starts with "v=0"; a trailing NUL after the SDP (some senders add one) is dropped.
  std::string p;
  p += static_cast<char>(0x30);
  p += static_cast<char>(1);
  p += static_cast<char>(0x00);
  p += static_cast<char>(0x07);
  const unsigned char v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05};
  p.append(reinterpret_cast<const char*>(v6), 16);
  p += "AUTH";
  p += kSdp;
  p += '\0';
  std::string err;
  const auto m = parse_sap(bytes_of(p), err);
  ASSERT_TRUE(m) << err;
  EXPECT_EQ(m->origin, "2001:db8::5");
  EXPECT_EQ(m->msg_id_hash, 7);
  EXPECT_EQ(m->payload_type, "");
  EXPECT_EQ(m->sdp, kSdp);
}

TEST(Sap, MalformedAndUnsupportedPacketsAreNamed) {
  const std::string good = build_sap(false, 1, "10.0.0.5", kSdp);
  auto error_of = [](std::string p) {
    std::string err;
    EXPECT_FALSE(parse_sap(bytes_of(p), err));
    return err;
  };
  EXPECT_NE(error_of(good.substr(0, 6)).find("shorter"), std::string::npos);
  std::string v2 = good;
  v2[0] = static_cast<char>(0x40);
  EXPECT_NE(error_of(v2).find("version 2"), std::string::npos);
  std::string enc = good;
  enc[0] = static_cast<char>(0x22);
  EXPECT_NE(error_of(enc).find("encrypted"), std::string::npos);
  std::string zip = good;
  zip[0] = static_cast<char>(0x21);
  EXPECT_NE(error_of(zip).find("compressed"), std::string::npos);
  std::string auth = good;
  auth[1] = static_cast<char>(200);
  EXPECT_NE(error_of(auth).find("beyond"), std::string::npos);
  std::string mime = good;
  mime.replace(8, 15, "application/xml");
  EXPECT_NE(error_of(mime).find("application/xml"), std::string::npos);
  // 8 header bytes, then "application/sdp" and its NUL (16 bytes).
  EXPECT_NE(error_of(good.substr(0, 8 + 15)).find("payload type"), std::string::npos);
  EXPECT_NE(error_of(good.substr(0, 8 + 16)).find("empty"), std::string::npos);
}

// RFC 2974 §3: the C bit says the payload (payload type and description) is zlib-compressed.
// It is inflated and read as any announcement; one that would inflate beyond kMaxSapPayload
// (a small datagram asking for a large buffer) is refused and named.
TEST(Sap, CompressedAnnouncementsAreInflatedWithinABound) {
  auto compressed_sap = [](const std::string& payload) {
    std::vector<std::uint8_t> z(compressBound(static_cast<uLong>(payload.size())));
    uLongf len = static_cast<uLongf>(z.size());
    EXPECT_EQ(compress(z.data(), &len, reinterpret_cast<const Bytef*>(payload.data()),
                       static_cast<uLong>(payload.size())),
              Z_OK);
    std::string p = build_sap(false, 7, "10.0.0.5", "x").substr(0, 8);
    p[0] = static_cast<char>(p[0] | 0x01);
    p.append(reinterpret_cast<const char*>(z.data()), len);
    return p;
  };
  std::string err;
  const std::string sap = compressed_sap(std::string("application/sdp") + '\0' + kSdp);
  const auto m = parse_sap(bytes_of(sap), err);
  ASSERT_TRUE(m) << err;
  EXPECT_EQ(m->sdp, kSdp);
  EXPECT_EQ(m->payload_type, "application/sdp");
  EXPECT_EQ(m->msg_id_hash, 7);
  EXPECT_EQ(m->origin, "10.0.0.5");
  const std::string bomb = compressed_sap(kSdp + std::string(kMaxSapPayload, ' '));
  EXPECT_LT(bomb.size(), 1500u);
  EXPECT_FALSE(parse_sap(bytes_of(bomb), err));
  EXPECT_NE(err.find("beyond 65536 bytes"), std::string::npos) << err;
}
