// The --config file reader (issue #15): TOML values to the text the flags take, in file order;
// errors name file and line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "node/config_file.hpp"

using namespace rtpnode;

namespace {

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(ConfigFile, ValuesBecomeFlagTextInFileOrder) {
  const std::string path = write_file("ok.toml",
                                      "# a comment\n"
                                      "listen = [\"0.0.0.0:5004\", \"[ff02::1]:5006\"]\n"
                                      "latency = 'auto'\n"
                                      "max-sources = 8\n"
                                      "resampler-quality = 4.5\n"
                                      "http-allow-remote = true\n"
                                      "offset = \"port:5004=+12.5ms\"\n");
  std::string err;
  const auto e = read_config_file(path, err);
  ASSERT_TRUE(e) << err;
  ASSERT_EQ(e->size(), 6u);
  EXPECT_EQ((*e)[0].key, "listen");
  EXPECT_EQ((*e)[0].line, 2u);
  EXPECT_EQ((*e)[0].values, (std::vector<std::string>{"0.0.0.0:5004", "[ff02::1]:5006"}));
  EXPECT_EQ((*e)[1].values, std::vector<std::string>{"auto"});
  EXPECT_EQ((*e)[2].values, std::vector<std::string>{"8"});
  EXPECT_EQ((*e)[3].values, std::vector<std::string>{"4.5"});
  EXPECT_EQ((*e)[4].values, std::vector<std::string>{"true"});
  EXPECT_EQ((*e)[5].key, "offset");
  EXPECT_EQ((*e)[5].line, 7u);
}

TEST(ConfigFile, ErrorsNameFileAndLine) {
  std::string err;
  EXPECT_FALSE(read_config_file(write_file("syntax.toml", "listen = [\"a\"\nx = 1\n"), err));
  EXPECT_NE(err.find("syntax.toml:2:"), std::string::npos) << err;
  EXPECT_FALSE(
      read_config_file(write_file("table.toml", "listen = \"a\"\n[device]\nname = 1\n"), err));
  EXPECT_NE(err.find("table.toml:2: device:"), std::string::npos) << err;
  EXPECT_FALSE(read_config_file(write_file("nested.toml", "\n\nroute = [[\"a\"]]\n"), err));
  EXPECT_NE(err.find("nested.toml:3: route: an array element"), std::string::npos) << err;
  EXPECT_FALSE(read_config_file(write_file("date.toml", "duration = 1979-05-27\n"), err));
  EXPECT_NE(err.find("date.toml:1: duration:"), std::string::npos) << err;
  EXPECT_FALSE(read_config_file(::testing::TempDir() + "no-such-file.toml", err));
  EXPECT_NE(err.find("no-such-file.toml:"), std::string::npos) << err;
}
