#include <gtest/gtest.h>

#include <string>

#include "node/sap_directory.hpp"

using namespace rtpnode;

namespace {

constexpr mono_ns_t kSecond = 1'000'000'000;

SapMessage announce(const std::string& name, std::uint16_t hash = 1, int port = 5004,
                    const std::string& origin = "10.0.0.5") {
  SapMessage m;
  m.msg_id_hash = hash;
  m.origin = origin;
  m.sdp = "v=0\r\no=- 1 1 IN IP4 " + origin + "\r\ns=" + name +
          "\r\nc=IN IP4 239.1.2.3\r\nt=0 0\r\nm=audio " + std::to_string(port) +
          " RTP/AVP 127\r\na=rtpmap:127 L16/48000/2\r\n";
  return m;
}

SapMessage deletion_of(SapMessage m) {
  m.deletion = true;
  m.sdp = "v=0\r\no=- 1 1 IN IP4 " + m.origin + "\r\n";  // the o= line suffices (§3)
  return m;
}

}  // namespace

TEST(SapDirectory, AnnouncementsAddRefreshChangeAndDeleteASession) {
  SapDirectory d("", 8);
  using O = SapDirectory::Outcome;
  auto c = d.on_message(announce("Studio A"), 0);
  EXPECT_EQ(c.outcome, O::added);
  EXPECT_EQ(c.session.name, "Studio A");
  EXPECT_EQ(c.session.key, "10.0.0.5#1");
  EXPECT_EQ(d.on_message(announce("Studio A"), 5 * kSecond).outcome, O::refreshed);
  EXPECT_EQ(d.sessions().at("10.0.0.5#1").interval_ns, 5 * kSecond);
  EXPECT_EQ(d.sessions().at("10.0.0.5#1").announcements, 2u);
  c = d.on_message(announce("Studio A", 1, 5006), 10 * kSecond);
  EXPECT_EQ(c.outcome, O::changed) << "same origin and hash, another description";
  EXPECT_NE(c.session.sdp.find("5006"), std::string::npos);
  // The same hash from another origin is another session (RFC 2974 §3: origin + hash).
  EXPECT_EQ(d.on_message(announce("Studio A", 1, 5004, "10.0.0.6"), 11 * kSecond).outcome,
            O::added);
  EXPECT_EQ(d.sessions().size(), 2u);
  c = d.on_message(deletion_of(announce("Studio A")), 12 * kSecond);
  EXPECT_EQ(c.outcome, O::deleted);
  EXPECT_EQ(c.session.name, "Studio A");
  EXPECT_EQ(d.sessions().size(), 1u);
  EXPECT_EQ(d.on_message(deletion_of(announce("Studio A")), 13 * kSecond).outcome, O::ignored)
      << "a deletion of an unknown session changes nothing";
}

TEST(SapDirectory, SessionsTimeOutAfterTenAnnouncementIntervals) {
  SapDirectory d("", 8);
  d.on_message(announce("A", 1), 0);
  d.on_message(announce("A", 1), 5 * kSecond);  // PipeWire: every 5 s -> 50 s
  d.on_message(announce("B", 2), 5 * kSecond);  // heard once: 10 x 300 s
  EXPECT_TRUE(d.expire(5 * kSecond + 50 * kSecond).empty());
  const auto gone = d.expire(5 * kSecond + 50 * kSecond + 1);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].name, "A");
  EXPECT_TRUE(d.expire(5 * kSecond + 3000 * kSecond).empty());
  EXPECT_EQ(d.expire(5 * kSecond + 3000 * kSecond + 1).size(), 1u);
  EXPECT_TRUE(d.sessions().empty());
  // A very short interval is held at 1 s: 10 s.
  d.on_message(announce("C", 3), 0);
  d.on_message(announce("C", 3), 1000);
  EXPECT_TRUE(d.expire(10 * kSecond).empty());
  EXPECT_EQ(d.expire(10 * kSecond + 1001).size(), 1u);
}

TEST(SapDirectory, FilterLimitAndBadDescriptionsAreOutcomesNotSessions) {
  using O = SapDirectory::Outcome;
  SapDirectory d("Studio*", 1);
  EXPECT_EQ(d.on_message(announce("Kitchen"), 0).outcome, O::ignored);
  EXPECT_EQ(d.on_message(announce("Kitchen"), kSecond).outcome, O::ignored);
  EXPECT_EQ(d.filtered(), 1u) << "counted once per announcement, not per repetition";
  EXPECT_EQ(d.on_message(announce("Studio A", 2), 0).outcome, O::added);
  EXPECT_EQ(d.on_message(announce("Studio B", 3), 0).outcome, O::refused) << "max 1 session";
  SapMessage bad = announce("Studio C", 4);
  bad.sdp = "v=0\r\ns=no media\r\n";
  const auto c = d.on_message(bad, 0);
  EXPECT_EQ(c.outcome, O::invalid);
  EXPECT_NE(c.error.find("m=audio"), std::string::npos) << c.error;
  EXPECT_EQ(d.sessions().size(), 1u);
}
