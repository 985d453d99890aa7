// The stats model renders one set of figures as JSON and as Prometheus text; the documents in
// docs/ are generated from the same tables.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "node/stats_model.hpp"
#include "support/prometheus_check.hpp"

using namespace rtpnode;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<SourceReport> two_sources() {
  SourceReport a;
  a.state = "active";
  a.stats.ssrc = 0x1a2b3c4d;
  a.stats.port = 5004;
  a.stats.payload = "pcmu/8000/1";
  a.stats.remote = "127.0.0.1:4000";
  a.stats.packets_received = 1234;
  a.stats.packets_lost = 7;
  a.stats.jitter_ms = 2.5;
  a.stats.target_delay_ms = 40;
  a.stats.drift_ppm = 120;
  a.stats.muted = true;
  SourceReport b = a;
  b.stats.ssrc = 2;
  b.stats.remote = "weird \"quoted\" \\ name\nline";  // label escaping
  b.stats.route = "1,2";
  SourceReport gone = a;
  gone.state = "departed";
  gone.stats.ssrc = 3;
  return {a, b, gone};
}

NodeSnapshot node() {
  NodeSnapshot n;
  n.datagrams = 99;
  n.packets_rejected = {{"too_short", 2}, {"rtcp", 5}};
  n.callback_buckets[0] = 10;
  n.callback_buckets[3] = 5;
  n.callback_buckets.back() = 1;
  n.callback_count = 16;
  n.callback_sum_s = 0.0021;
  n.device = "JACK: system";
  n.sync = "rtcp";
  return n;
}

}  // namespace

TEST(StatsModel, PrometheusTextIsValidLineByLine) {
  const std::string text = prometheus_text(node(), two_sources());
  const auto check = test::check_prometheus(text);
  for (const auto& p : check.problems) ADD_FAILURE() << p;
  EXPECT_EQ(check.samples.at("rtpnode_datagrams_total"), 99);
  EXPECT_EQ(check.samples.at("rtpnode_source_packets_received_total{ssrc=\"0x1a2b3c4d\",port="
                             "\"5004\",payload=\"pcmu/8000/1\"}"),
            1234);
  // Base units: ms -> s, ppm -> ratio.
  EXPECT_DOUBLE_EQ(check.samples.at("rtpnode_source_jitter_seconds{ssrc=\"0x1a2b3c4d\",port="
                                    "\"5004\",payload=\"pcmu/8000/1\"}"),
                   0.0025);
  EXPECT_DOUBLE_EQ(
      check.samples.at(
          "rtpnode_source_drift_ratio{ssrc=\"0x1a2b3c4d\",port=\"5004\",payload=\"pcmu/8000/1\"}"),
      120e-6);
  EXPECT_EQ(check.samples.at(
                "rtpnode_source_muted{ssrc=\"0x1a2b3c4d\",port=\"5004\",payload=\"pcmu/8000/1\"}"),
            1);
  EXPECT_EQ(check.samples.at("rtpnode_callback_duration_seconds_bucket{le=\"+Inf\"}"), 16);
  EXPECT_EQ(check.samples.at("rtpnode_callback_duration_seconds_bucket{le=\"2.5e-05\"}"), 10);
  EXPECT_EQ(check.samples.at("rtpnode_packets_rejected_total{reason=\"too_short\"}"), 2);
  EXPECT_EQ(check.types.at("rtpnode_source_packets_lost"),
            "gauge");  // RFC 3550 cumulative lost can fall
  // The escaped sender address, and no series of the departed source.
  EXPECT_NE(text.find("remote=\"weird \\\"quoted\\\" \\\\ name\\nline\""), std::string::npos);
  EXPECT_EQ(text.find("0x00000003"), std::string::npos);
}

TEST(StatsModel, TheCheckerRejectsBrokenExposition) {
  // The checker itself must catch what it claims to: a counter without _total, a sample with no
  // TYPE, a repeated series, an unescaped quote, a non-cumulative histogram.
  EXPECT_FALSE(test::check_prometheus("# HELP x_count c\n# TYPE x_count counter\nx_count 1\n")
                   .problems.empty());
  EXPECT_FALSE(test::check_prometheus("y 1\n").problems.empty());
  EXPECT_FALSE(test::check_prometheus("# HELP y h\n# TYPE y gauge\ny 1\ny 2\n").problems.empty());
  EXPECT_FALSE(
      test::check_prometheus("# HELP y h\n# TYPE y gauge\ny{a=\"x\"y\"} 1\n").problems.empty());
  EXPECT_FALSE(test::check_prometheus("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} "
                                      "5\nh_bucket{le=\"+Inf\"} 4\nh_sum 1\nh_count 4\n")
                   .problems.empty());
  EXPECT_TRUE(
      test::check_prometheus("# HELP y h\n# TYPE y gauge\ny{a=\"x\\\"y\"} 1\n").problems.empty());
}

TEST(StatsModel, JsonHasEveryDocumentedFieldAndNoOther) {
  const nlohmann::json schema = stats_json_schema();
  const nlohmann::json doc = stats_json(node(), two_sources());
  ASSERT_EQ(doc["sources"].size(), 3u);  // departed ones stay in JSON
  const auto& src_schema = schema["properties"]["sources"]["items"];
  for (const auto& s : doc["sources"]) {
    EXPECT_EQ(s.size(), src_schema["properties"].size());
    for (const auto& [k, v] : s.items()) {
      ASSERT_TRUE(src_schema["properties"].contains(k)) << k;
      const std::string type = src_schema["properties"][k]["type"];
      const bool ok = type == "integer"  ? v.is_number_integer()
                      : type == "number" ? v.is_number()
                      : type == "string" ? v.is_string()
                                         : v.is_boolean();
      EXPECT_TRUE(ok) << k << " is not " << type;
    }
  }
  for (const auto& [k, v] : doc["node"].items())
    EXPECT_TRUE(schema["properties"]["node"]["properties"].contains(k)) << k;
  EXPECT_EQ(doc["node"]["callback_duration"]["counts"].size(), CallbackTimes::kBoundsUs.size() + 1);
}

TEST(StatsModel, DocsAreGeneratedFromTheFieldTables) {
  // Regenerate with: build/node/rtpnode --stats-doc > docs/STATS.md;
  //                  build/node/rtpnode --stats-schema > docs/stats.schema.json
  EXPECT_EQ(slurp(RTPNODE_SOURCE_DIR "/docs/STATS.md"), stats_doc_markdown());
  EXPECT_EQ(nlohmann::json::parse(slurp(RTPNODE_SOURCE_DIR "/docs/stats.schema.json")),
            stats_json_schema());
}

TEST(StatsModel, StatsLineSaysTheNodeAndEachActiveSource) {
  NodeSnapshot n;
  n.uptime_s = 12.04;
  n.callbacks = 2250;
  n.xruns = 1;
  SourceReport a;
  a.state = "active";
  a.stats.ssrc = 0x1a2b3c4d;
  a.stats.payload = "pcmu/8000/1";
  a.stats.audio_rate = 8000;
  a.stats.packets_received = 600;
  a.stats.packets_lost = 3;
  a.stats.frames_concealed = 480;  // 60 ms at 8 kHz
  a.stats.drift_ppm = -12.34;
  SourceReport gone = a;
  gone.state = "departed";
  EXPECT_EQ(
      stats_line(n, {a, gone}, false),
      "[   12.0s] cb=2250 xruns=1 sources=1 | 1a2b3c4d pcmu/8000/1 rx=600 lost=3 late=0 dup=0 "
      "conc=60ms under=0 jit=0.0ms jb=0/0ms e2e=0.0ms drift=-12.3ppm");
  n.packets_malformed = 4;
  n.packets_unknown_payload_type = 2;
  EXPECT_EQ(stats_line(n, {}, true),
            "[   12.0s] cb=2250 xruns=1 sources=0 malformed=4 unknown_pt=2 (final)");
}
