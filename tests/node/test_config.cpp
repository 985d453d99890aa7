#include <gtest/gtest.h>

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
