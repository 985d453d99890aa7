#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "node/config.hpp"

using namespace rtpnode;
using namespace std::chrono_literals;

TEST(Config, ParsesDurationsWithUnits) {
  std::string err;
  EXPECT_EQ(*parse_duration("40ms", err), 40ms);
  EXPECT_EQ(*parse_duration("2s", err), 2s);
  EXPECT_EQ(*parse_duration("1.5s", err), 1500ms);
  EXPECT_EQ(*parse_duration("250us", err), 250us);
  EXPECT_EQ(*parse_duration("0s", err), 0s);
  EXPECT_FALSE(parse_duration("40", err));
  EXPECT_NE(err.find("unit"), std::string::npos);
  EXPECT_FALSE(parse_duration("ms", err));
  EXPECT_FALSE(parse_duration("-5ms", err));
  EXPECT_FALSE(parse_duration("5 parsecs", err));
}

// Issue #16 finding 6: "99999999999999999999h" became -9.22e18 ns and passed range checks.
TEST(Config, DurationsBeyondTheirRangeAreErrorsNotWrappedNumbers) {
  std::string err;
  EXPECT_FALSE(parse_duration("99999999999999999999h", err));
  EXPECT_NE(err.find("too long"), std::string::npos) << err;
  EXPECT_FALSE(parse_duration("10000000000s", err));
  EXPECT_FALSE(parse_duration("1e400s", err));
  EXPECT_FALSE(parse_duration("24001h", err));
  EXPECT_EQ(*parse_duration("24000h", err), kMaxDuration);
  // The control endpoint's offset goes through the same parser and its +-10 s range check.
  EXPECT_FALSE(parse_offset_rule("port:5004=10000000000s", err));
  EXPECT_FALSE(parse_offset_rule("port:5004=-10000000000s", err));
  EXPECT_NE(err.find("too long"), std::string::npos) << err;
  EXPECT_FALSE(parse_offset_rule("port:5004=+11s", err));
  ASSERT_TRUE(parse_offset_rule("port:5004=-10s", err));
  EXPECT_EQ(parse_offset_rule("port:5004=-10s", err)->offset, -10s);
}

TEST(Config, ParsesListenAddresses) {
  std::string err;
  auto v4 = parse_listen("0.0.0.0:5004", err);
  ASSERT_TRUE(v4) << err;
  EXPECT_EQ(v4->address, "0.0.0.0");
  EXPECT_EQ(v4->port, 5004);
  auto v6 = parse_listen("[::1]:6000", err);
  ASSERT_TRUE(v6) << err;
  EXPECT_EQ(v6->address, "::1");
  EXPECT_EQ(v6->describe(), "[::1]:6000");
  EXPECT_TRUE(parse_listen("239.1.2.3:5004", err));
  EXPECT_FALSE(parse_listen("localhost:5004", err));
  EXPECT_FALSE(parse_listen("0.0.0.0:0", err));
  EXPECT_FALSE(parse_listen("0.0.0.0:70000", err));
  EXPECT_FALSE(parse_listen("5004", err));
  EXPECT_FALSE(parse_listen("[::1:5004", err));
}

TEST(Config, ParsesSourceSelectorsAndRules) {
  std::string err;
  auto p = parse_selector("port:5004", err);
  ASSERT_TRUE(p) << err;
  EXPECT_TRUE(p->matches(5004, 1, true));
  EXPECT_FALSE(p->matches(5006, 1, true));
  auto s = parse_selector("ssrc:0x1A2B3C4D", err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->value, 0x1A2B3C4Du);
  EXPECT_TRUE(s->matches(1, 0x1A2B3C4D, true));
  EXPECT_FALSE(s->matches(1, 0x1A2B3C4D, false));
  for (const char* bad : {"5004", "port:", "port:0", "port:70000", "ssrc:0xZZ", "ssrc:0x123456789", "host:1", "port:12x"})
    EXPECT_FALSE(parse_selector(bad, err)) << bad;

  auto o = parse_offset_rule("port:5004=+12.5ms", err);
  ASSERT_TRUE(o) << err;
  EXPECT_EQ(o->offset, 12500us);
  EXPECT_EQ(parse_offset_rule("ssrc:7=-3ms", err)->offset, -3ms);
  EXPECT_FALSE(parse_offset_rule("port:5004=12", err));
  EXPECT_FALSE(parse_offset_rule("port:5004", err));
  EXPECT_FALSE(parse_offset_rule("port:5004=+11s", err));

  EXPECT_EQ(parse_route_rule("port:1=L", 2, err)->route, std::vector<int>{0});
  EXPECT_EQ(parse_route_rule("port:1=LR", 2, err)->route, (std::vector<int>{0, 1}));
  EXPECT_EQ(parse_route_rule("port:1=3,4", 8, err)->route, (std::vector<int>{2, 3}));
  EXPECT_FALSE(parse_route_rule("port:1=3", 2, err));
  EXPECT_NE(err.find("device channel 3"), std::string::npos) << err;
  EXPECT_FALSE(parse_route_rule("port:1=0", 2, err));
  EXPECT_FALSE(parse_route_rule("port:1=1,", 2, err));
  EXPECT_FALSE(parse_route_rule("port:1=X", 2, err));

  EXPECT_EQ(parse_gain_rule("port:1=-6dB", err)->gain_db, -6.0);
  EXPECT_EQ(parse_gain_rule("port:1=+3.5dB", err)->gain_db, 3.5);
  EXPECT_FALSE(parse_gain_rule("port:1=-6", err));
  EXPECT_FALSE(parse_gain_rule("port:1=+30dB", err));
}

TEST(Config, SsrcRulesBeatPortRulesAndLaterRulesWin) {
  std::string err;
  NodeConfig c;
  c.gains = {*parse_gain_rule("ssrc:0x10=-3dB", err), *parse_gain_rule("port:5004=-6dB", err),
             *parse_gain_rule("port:5004=-9dB", err)};
  c.offsets = {*parse_offset_rule("port:5004=+10ms", err)};
  EXPECT_EQ(c.settings_for(5004, 0x10, true).gain_db, -3.0);
  EXPECT_EQ(c.settings_for(5004, 0x11, true).gain_db, -9.0);
  EXPECT_EQ(c.settings_for(5004, 0x11, true).offset, 10ms);
  EXPECT_EQ(c.settings_for(5006, 0x11, true).gain_db, 0.0);
  EXPECT_FALSE(c.settings_for(5006, 0x11, true).route);
}

namespace {
sockaddr_storage addr(const char* ip) {
  sockaddr_storage ss{};
  if (inet_pton(AF_INET, ip, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    ss.ss_family = AF_INET;
  } else {
    inet_pton(AF_INET6, ip, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr);
    ss.ss_family = AF_INET6;
  }
  return ss;
}
bool in(const Cidr& c, const char* ip) {
  const sockaddr_storage ss = addr(ip);
  return c.contains(reinterpret_cast<const sockaddr*>(&ss));
}
}  // namespace

TEST(Config, AllowBlocksParseAndMatchIpv4Ipv6AndMappedAddresses) {
  std::string err;
  const auto lan = parse_cidr("192.168.1.0/24", err);
  ASSERT_TRUE(lan) << err;
  EXPECT_TRUE(in(*lan, "192.168.1.77"));
  EXPECT_FALSE(in(*lan, "192.168.2.1"));
  EXPECT_TRUE(in(*lan, "::ffff:192.168.1.9"));  // a dual-stack socket's view of an IPv4 sender
  const auto host = parse_cidr("10.0.0.7", err);
  ASSERT_TRUE(host);
  EXPECT_EQ(host->prefix, 32);
  EXPECT_TRUE(in(*host, "10.0.0.7"));
  EXPECT_FALSE(in(*host, "10.0.0.8"));
  const auto ula = parse_cidr("fd00::/8", err);
  ASSERT_TRUE(ula);
  EXPECT_TRUE(in(*ula, "fd12:3456::1"));
  EXPECT_FALSE(in(*ula, "fe80::1"));
  EXPECT_FALSE(in(*ula, "10.0.0.7"));
  const auto odd = parse_cidr("10.0.0.0/9", err);
  ASSERT_TRUE(odd);
  EXPECT_TRUE(in(*odd, "10.127.255.255"));
  EXPECT_FALSE(in(*odd, "10.128.0.0"));
  EXPECT_TRUE(in(*parse_cidr("0.0.0.0/0", err), "203.0.113.5"));
  EXPECT_FALSE(parse_cidr("10.1.2.3/8", err));  // host bits set
  EXPECT_NE(err.find("beyond /8"), std::string::npos) << err;
  EXPECT_FALSE(parse_cidr("10.0.0.0/33", err));
  EXPECT_FALSE(parse_cidr("10.0.0.0/", err));
  EXPECT_FALSE(parse_cidr("example.com/24", err));
  EXPECT_FALSE(parse_cidr("fd00::/129", err));
}
