// Call discovery (issue #14): SIP and SDP parsing, sides from offer/answer, re-INVITE, hold,
// BYE, and rtpbreak-style RTP heuristics with held packets, pairing and bounds.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "node/call_discovery.hpp"
#include "support/packet_builder.hpp"

namespace rtpnode {
namespace {

using Bytes = std::vector<std::uint8_t>;

sockaddr_storage v4(const char* ip, std::uint16_t port) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  inet_pton(AF_INET, ip, &sin->sin_addr);
  sin->sin_port = htons(port);
  return ss;
}

Bytes bytes(const std::string& s) {
  return Bytes(s.begin(), s.end());
}

CapturedDatagram datagram(std::int64_t t, const sockaddr_storage& from, const sockaddr_storage& to,
                          const Bytes& payload) {
  CapturedDatagram d;
  d.time_ns = t;
  d.source = from;
  d.destination = to;
  d.payload = payload;
  return d;
}

std::string sdp(const std::string& ip, int port, const std::string& formats,
                const std::string& attributes) {
  return "v=0\r\no=- 1 1 IN IP4 " + ip + "\r\ns=-\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\nm=audio " +
         std::to_string(port) + " RTP/AVP " + formats + "\r\n" + attributes;
}

std::string sip(const std::string& start, const std::string& call_id, const std::string& cseq,
                const std::string& body) {
  std::string m = start + "\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n" +
                  "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n" +
                  "To: <sip:bob@example.com>\r\nCall-ID: " + call_id + "\r\nCSeq: " + cseq + "\r\n";
  if (!body.empty()) m += "Content-Type: application/sdp\r\n";
  m += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  return m;
}

TEST(Sdp, MediaLevelConnectionMappingsAndPtime) {
  const auto a = parse_sdp_audio(
      "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
      "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
      "m=audio 40000 RTP/AVP 96 0 101\r\nc=IN IP4 239.1.2.3/16\r\n"
      "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->address, "239.1.2.3");  // media-level c=, TTL dropped
  EXPECT_EQ(a->port, 40000);
  EXPECT_EQ(a->protocol, "RTP/AVP");
  EXPECT_EQ(a->payload_types, (std::vector<int>{96, 0, 101}));
  EXPECT_EQ(a->rtpmap.at(96), "opus/48000/2");  // the video's 96 is not the audio's
  EXPECT_EQ(a->ptime_ms, 20);
}

TEST(Sdp, DeclinedMissingAndGarbageGiveNothing) {
  EXPECT_FALSE(parse_sdp_audio("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 0 RTP/AVP 0\r\n"));
  EXPECT_FALSE(parse_sdp_audio("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"));  // no c= anywhere
  EXPECT_FALSE(parse_sdp_audio("v=0\r\nc=IN IP4 not-an-ip\r\nm=audio 4000 RTP/AVP 0\r\n"));
  EXPECT_FALSE(parse_sdp_audio("\x01\x02garbage=\r\nm=audio x y\r\n"));
  EXPECT_FALSE(parse_sdp_audio(""));
  const auto v6 = parse_sdp_audio("c=IN IP6 2001:db8::5\nm=audio 7078 RTP/AVP 8\n");  // bare LF
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address, "2001:db8::5");
}

TEST(Sip, RequestsResponsesCompactFormsFoldingAndContentLength) {
  const auto inv =
      parse_sip(bytes(sip("INVITE sip:bob@example.com SIP/2.0", "abc@host", "1 INVITE", "v=0\r\n") +
                      "trailing bytes beyond Content-Length"));
  ASSERT_TRUE(inv);
  EXPECT_TRUE(inv->request);
  EXPECT_EQ(inv->method, "INVITE");
  EXPECT_EQ(inv->call_id, "abc@host");
  EXPECT_EQ(inv->from, "\"Alice\" <sip:alice@example.com>;tag=a1");
  EXPECT_EQ(inv->body, "v=0\r\n");
  EXPECT_EQ(inv->content_type, "application/sdp");
  const auto ok =
      parse_sip(bytes("SIP/2.0 200 OK\r\ni: xyz\r\nf: <sip:a@b>\r\nt: <sip:c@d>\r\n ;tag=folded\r\n"
                      "CSeq: 7 INVITE\r\nc: Application/SDP; charset=x\r\nl: 3\r\n\r\nabcdef"));
  ASSERT_TRUE(ok);
  EXPECT_FALSE(ok->request);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->call_id, "xyz");
  EXPECT_EQ(ok->to, "<sip:c@d> ;tag=folded");
  EXPECT_EQ(ok->cseq_method, "INVITE");
  EXPECT_EQ(ok->content_type, "application/sdp");
  EXPECT_EQ(ok->body, "abc");
  for (const char* junk : {"", "HTTP/1.1 200 OK\r\n\r\n", "SIP/2.0 999 Odd\r\nCall-ID: x\r\n\r\n",
                           "invite sip:x SIP/2.0\r\nCall-ID: x\r\n\r\n",
                           "INVITE sip:x SIP/2.0\r\n\r\n" /* no Call-ID */})
    EXPECT_FALSE(parse_sip(bytes(junk))) << junk;
}

TEST(CallDiscovery, OfferAndAnswerGiveBothSidesWithTheirPayloadMaps) {
  CallDiscovery cd(true);
  const auto alice = v4("10.0.0.1", 5060), bob = v4("10.0.0.2", 5080);
  const Bytes invite = bytes(sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "c1", "1 INVITE",
                                 sdp("10.0.0.1", 40000, "96 101",
                                     "a=rtpmap:96 opus/48000/2\r\na=rtpmap:101 "
                                     "telephone-event/8000\r\n")));
  auto r = cd.on_datagram(datagram(1000, alice, bob, invite), false);
  EXPECT_TRUE(r.sip);
  ASSERT_EQ(r.new_endpoints.size(), 1u);
  const MediaEndpoint callee_voice = r.new_endpoints[0];
  EXPECT_EQ(endpoint_text(callee_voice.address), "10.0.0.1:40000");
  EXPECT_EQ(callee_voice.side, 1);  // the caller receives the callee's voice: right
  ASSERT_TRUE(callee_voice.payloads);
  ASSERT_NE(callee_voice.payloads->find(96), nullptr);
  EXPECT_EQ(callee_voice.payloads->find(96)->codec, Codec::opus);
  ASSERT_NE(callee_voice.payloads->find(101), nullptr);
  EXPECT_EQ(callee_voice.payloads->find(101)->codec, Codec::telephone_event);
  EXPECT_NE(callee_voice.payloads->find(0), nullptr);  // RFC 3551 static types stay
  EXPECT_EQ(callee_voice.codecs, "opus/48000/2 telephone-event/8000");

  const Bytes answer = bytes(
      sip("SIP/2.0 200 OK", "c1", "1 INVITE",
          sdp("10.0.0.2", 50000, "0 97", "a=rtpmap:0 PCMU/8000\r\na=rtpmap:97 L16/16000\r\n")));
  r = cd.on_datagram(datagram(2000, bob, alice, answer), false);
  ASSERT_EQ(r.new_endpoints.size(), 1u);
  EXPECT_EQ(endpoint_text(r.new_endpoints[0].address), "10.0.0.2:50000");
  EXPECT_EQ(r.new_endpoints[0].side, 0);  // the callee receives the caller's voice: left
  EXPECT_EQ(r.new_endpoints[0].call, callee_voice.call);
  // Each side's map is its own SDP's, filled in with what the call's other SDP maps: the
  // answer's endpoint decodes the offer's opus and digits, the offer's now knows 97.
  const auto& answer_map = *r.new_endpoints[0].payloads;
  ASSERT_NE(answer_map.find(96), nullptr);
  EXPECT_EQ(answer_map.find(96)->codec, Codec::opus);
  ASSERT_NE(answer_map.find(97), nullptr);
  EXPECT_EQ(answer_map.find(97)->clock_rate, 16000u);
  ASSERT_NE(callee_voice.payloads->find(97), nullptr);
  EXPECT_EQ(callee_voice.payloads->find(97)->codec, Codec::l16);

  // A re-INVITE from the callee moving its media: still the callee's endpoint.
  r = cd.on_datagram(datagram(3000, bob, alice,
                              bytes(sip("INVITE sip:alice@10.0.0.1 SIP/2.0", "c1", "2 INVITE",
                                        sdp("10.0.0.2", 50002, "0", "")))),
                     false);
  ASSERT_EQ(r.new_endpoints.size(), 1u);
  EXPECT_EQ(endpoint_text(r.new_endpoints[0].address), "10.0.0.2:50002");
  EXPECT_EQ(r.new_endpoints[0].side, 0);
  // Hold (c=0.0.0.0) adds nothing; BYE ends the call.
  r = cd.on_datagram(datagram(4000, alice, bob,
                              bytes(sip("INVITE sip:bob@10.0.0.2 SIP/2.0", "c1", "2 INVITE",
                                        sdp("0.0.0.0", 40000, "0", "")))),
                     false);
  EXPECT_TRUE(r.new_endpoints.empty());
  cd.on_datagram(datagram(9000, alice, bob, bytes(sip("BYE sip:bob SIP/2.0", "c1", "3 BYE", ""))),
                 false);
  ASSERT_EQ(cd.calls().size(), 1u);
  EXPECT_EQ(cd.calls()[0].id, "c1");
  EXPECT_TRUE(cd.calls()[0].sip);
  EXPECT_EQ(cd.calls()[0].from, "\"Alice\" <sip:alice@example.com>;tag=a1");
  EXPECT_EQ(cd.calls()[0].start_ns, 1000);
  EXPECT_EQ(cd.calls()[0].end_ns, 9000);
  EXPECT_EQ(cd.sip_messages(), 5u);
}

TEST(CallDiscovery, ADialogSeenWithoutItsInviteIsNotACall) {
  CallDiscovery cd(false);
  auto r = cd.on_datagram(
      datagram(0, v4("10.0.0.2", 5060), v4("10.0.0.1", 5060),
               bytes(sip("SIP/2.0 200 OK", "late", "1 INVITE", sdp("10.0.0.2", 50000, "0", "")))),
      false);
  EXPECT_TRUE(r.sip);
  EXPECT_TRUE(r.new_endpoints.empty());
  EXPECT_TRUE(cd.calls().empty());
}

Bytes rtp(std::uint32_t ssrc, std::uint16_t seq, std::uint32_t ts, std::uint8_t pt = 0) {
  test::PacketBuilder b;
  b.ssrc = ssrc;
  b.pt = pt;
  return b.build(seq, ts, Bytes(160, 0xff));
}

TEST(CallDiscovery, HeuristicConfirmsAFlowAfterThreePacketsAndHandsBackTheHeldOnes) {
  CallDiscovery cd(true);
  const auto a = v4("10.0.0.1", 16384), b = v4("10.0.0.2", 16390);
  const Bytes p0 = rtp(7, 100, 1000), p1 = rtp(7, 101, 1160), p2 = rtp(7, 102, 1320);
  EXPECT_TRUE(cd.on_datagram(datagram(10, a, b, p0), false).new_endpoints.empty());
  EXPECT_TRUE(cd.on_datagram(datagram(20, a, b, p1), false).new_endpoints.empty());
  auto r = cd.on_datagram(datagram(30, a, b, p2), false);
  ASSERT_EQ(r.new_endpoints.size(), 1u);
  EXPECT_EQ(endpoint_text(r.new_endpoints[0].address), "10.0.0.2:16390");
  EXPECT_EQ(r.new_endpoints[0].side, 0);
  EXPECT_FALSE(r.new_endpoints[0].payloads);  // static types only
  ASSERT_EQ(r.held.size(), 2u);
  EXPECT_EQ(r.held[0].first, 10);
  EXPECT_EQ(r.held[0].second, p0);
  EXPECT_EQ(r.held[1].second, p1);
  // The reverse flow joins the same call, on the other side.
  for (std::uint16_t i = 0; i < 3; ++i)
    r = cd.on_datagram(
        datagram(40 + i, b, a, rtp(9, static_cast<std::uint16_t>(65534 + i), 500u + 160u * i)),
        false);  // across the sequence wrap
  ASSERT_EQ(r.new_endpoints.size(), 1u);
  EXPECT_EQ(r.new_endpoints[0].side, 1);
  ASSERT_EQ(cd.calls().size(), 1u);
  EXPECT_EQ(cd.calls()[0].id, "rtp:10.0.0.1:16384-10.0.0.2:16390");
  EXPECT_FALSE(cd.calls()[0].sip);
}

TEST(CallDiscovery, HeuristicRejectsWhatIsNotAStream) {
  // Each case is three packets of a flow of its own that would confirm it but for one defect.
  auto v1 = [](Bytes b) {
    b[0] = static_cast<std::uint8_t>((b[0] & 0x3f) | 0x40);
    return b;
  };
  const std::vector<std::pair<const char*, std::vector<Bytes>>> cases{
      {"sequence gap", {rtp(1, 10, 0), rtp(1, 12, 160), rtp(1, 13, 320)}},
      {"SSRC change", {rtp(1, 10, 0), rtp(1, 11, 160), rtp(2, 12, 320)}},
      {"timestamp back", {rtp(1, 10, 320), rtp(1, 11, 160), rtp(1, 12, 480)}},
      {"RTCP", {rtp(1, 10, 0, 72), rtp(1, 11, 160, 72), rtp(1, 12, 320, 72)}},
      {"version 1", {v1(rtp(1, 10, 0)), v1(rtp(1, 11, 160)), v1(rtp(1, 12, 320))}},
      {"too short", {Bytes(11, 0x80), Bytes(11, 0x80), Bytes(11, 0x80)}}};
  CallDiscovery cd(true);
  std::uint16_t port = 1000;
  for (const auto& [what, packets] : cases) {
    const auto a = v4("10.0.0.1", ++port), b = v4("10.0.0.2", 2000);
    for (std::size_t i = 0; i < packets.size(); ++i)
      EXPECT_TRUE(cd.on_datagram(datagram(static_cast<std::int64_t>(i), a, b, packets[i]), false)
                      .new_endpoints.empty())
          << what;
  }
  // The same three packets without the defect confirm a flow (the cases above are not vacuous).
  EXPECT_EQ(
      cd.on_datagram(datagram(0, v4("10.0.0.3", 1), v4("10.0.0.2", 2000), rtp(1, 10, 0)), false)
              .new_endpoints.size() +
          cd.on_datagram(datagram(1, v4("10.0.0.3", 1), v4("10.0.0.2", 2000), rtp(1, 11, 160)),
                         false)
              .new_endpoints.size() +
          cd.on_datagram(datagram(2, v4("10.0.0.3", 1), v4("10.0.0.2", 2000), rtp(1, 12, 320)),
                         false)
              .new_endpoints.size(),
      1u);
  // A destination that already plays is left alone; so is everything with the heuristic off.
  const auto a = v4("10.0.0.4", 1), b = v4("10.0.0.2", 2000);
  for (std::uint16_t i = 0; i < 5; ++i)
    EXPECT_TRUE(
        cd.on_datagram(datagram(100 + i, a, b, rtp(3, i, 160u * i)), true).new_endpoints.empty());
  EXPECT_EQ(cd.calls().size(), 1u);
  CallDiscovery off(false);
  for (std::uint16_t i = 0; i < 5; ++i)
    EXPECT_TRUE(
        off.on_datagram(datagram(i, a, b, rtp(3, i, 160u * i)), false).new_endpoints.empty());
}

TEST(CallDiscovery, CandidatesAreBounded) {
  CallDiscovery cd(true);
  // More single-packet flows than kMaxCandidates: the oldest are forgotten, so the first flow's
  // next two packets start over instead of confirming it.
  const auto b = v4("10.0.0.2", 2000);
  for (std::size_t i = 0; i <= CallDiscovery::kMaxCandidates; ++i)
    cd.on_datagram(
        datagram(0, v4("10.0.0.1", static_cast<std::uint16_t>(1000 + i)), b, rtp(1, 0, 0)), false);
  const auto first = v4("10.0.0.1", 1000);
  EXPECT_TRUE(cd.on_datagram(datagram(1, first, b, rtp(1, 1, 160)), false).new_endpoints.empty());
  EXPECT_TRUE(cd.on_datagram(datagram(2, first, b, rtp(1, 2, 320)), false).new_endpoints.empty());
  EXPECT_EQ(cd.on_datagram(datagram(3, first, b, rtp(1, 3, 480)), false).new_endpoints.size(), 1u);
}

}  // namespace
}  // namespace rtpnode
