#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fstream>
#include <functional>

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
  for (const char* bad : {"5004", "port:", "port:0", "port:70000", "ssrc:0xZZ", "ssrc:0x123456789",
                          "host:1", "port:12x"})
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

namespace {

/// Flags with one --listen on port 5004, the rest at their defaults.
NodeFlags one_listen() {
  NodeFlags f;
  f.listens = {"127.0.0.1:5004"};
  return f;
}

/// The error make_node_config gives ("" when it succeeds).
std::string config_error(const NodeFlags& f, NodeConfig base = {}) {
  std::string err;
  const auto cfg = make_node_config(f, std::move(base), err);
  return cfg ? std::string() : err;
}

}  // namespace

TEST(Config, DefaultFlagsBuildTheDefaultConfig) {
  std::string err;
  const auto cfg = make_node_config(one_listen(), {}, err);
  ASSERT_TRUE(cfg) << err;
  const NodeConfig d;
  EXPECT_EQ(cfg->latency_auto, d.latency_auto);
  EXPECT_EQ(cfg->min_latency, d.min_latency);
  EXPECT_EQ(cfg->max_latency, d.max_latency);
  EXPECT_EQ(cfg->render_lead, d.render_lead);
  EXPECT_EQ(cfg->source_timeout, d.source_timeout);
  EXPECT_EQ(cfg->stats_interval, d.stats_interval);
  EXPECT_EQ(cfg->rtcp_min_interval, d.rtcp_min_interval);
  EXPECT_EQ(cfg->drift_compensation, d.drift_compensation);
  EXPECT_EQ(cfg->sync_rtcp, d.sync_rtcp);
  EXPECT_EQ(cfg->rtcp_rr, d.rtcp_rr);
  EXPECT_EQ(cfg->music, d.music);
  EXPECT_FALSE(cfg->duration);
  ASSERT_EQ(cfg->listens.size(), 1u);
  EXPECT_EQ(cfg->listens[0].port, 5004);
  // The defaults --help shows are NodeConfig's, formatted.
  const NodeFlags f;
  EXPECT_EQ(f.max_latency, "1s");
  EXPECT_EQ(f.source_timeout, "5s");
  EXPECT_EQ(f.latency, "auto");
}

TEST(Config, FormatDurationRoundTripsThroughParseDuration) {
  for (auto d : {nanoseconds(0), nanoseconds(40'000'000), nanoseconds(5'000'000'000),
                 nanoseconds(250'000), nanoseconds(7), nanoseconds(1'500'000'000)}) {
    std::string err;
    const auto back = parse_duration(format_duration(d), err);
    ASSERT_TRUE(back) << format_duration(d) << ": " << err;
    EXPECT_EQ(*back, d);
  }
  EXPECT_EQ(format_duration(std::chrono::milliseconds(1500)), "1500ms");
}

TEST(Config, CrossFieldChecksNameTheFlagToFix) {
  struct Case {
    std::function<void(NodeFlags&, NodeConfig&)> set;
    std::string says;
  };
  const std::vector<Case> cases{
      {[](NodeFlags& f, NodeConfig&) { f.listens.clear(); }, "give at least one --listen"},
      {[](NodeFlags& f, NodeConfig&) { f.latency = "11s"; },
       "--latency 11s is above the 10 s maximum"},
      {[](NodeFlags& f, NodeConfig&) { f.latency = "40"; }, "needs a unit"},
      {[](NodeFlags& f, NodeConfig&) { f.max_latency = "20s"; }, "--max-latency 20s is above"},
      {[](NodeFlags& f, NodeConfig&) {
         f.min_latency = "200ms";
         f.max_latency = "100ms";
       },
       "--min-latency 200ms is above --max-latency 100ms"},
      {[](NodeFlags& f, NodeConfig&) { f.render_lead = "2s"; },
       "--render-lead 2s is above the 1 s maximum"},
      {[](NodeFlags& f, NodeConfig&) { f.rtcp_min_interval = "50ms"; },
       "--rtcp-min-interval 50ms is outside"},
      {[](NodeFlags& f, NodeConfig&) { f.offsets = {"port:5006=+10ms"}; },
       "--offset port:5006: no --listen has port 5006"},
      {[](NodeFlags& f, NodeConfig&) { f.gains = {"port:5006=-6dB"}; },
       "--gain port:5006: no --listen has port 5006"},
      {[](NodeFlags& f, NodeConfig&) { f.routes = {"port:5004=3"}; }, "names device channel 3"},
      {[](NodeFlags& f, NodeConfig&) {
         f.raws = {{-1, "s16le/8000/1"}};
       },
       "must follow the --listen"},
      {[](NodeFlags& f, NodeConfig&) { f.drift = "maybe"; }, "--drift maybe: expected on or off"},
      {[](NodeFlags& f, NodeConfig&) { f.duration = "x"; }, "--duration: bad duration"},
      {[](NodeFlags& f, NodeConfig&) { f.http_token_file = "/nonexistent/token"; },
       "--http-token-file /nonexistent/token: cannot read it"},
      {[](NodeFlags&, NodeConfig& c) { c.output = "mix.mp3"; }, "must end in .wav, .rf64 or .flac"},
      {[](NodeFlags&, NodeConfig& c) {
         c.output = "mix.flac";
         c.output_format = "f32";
       },
       "f32 is not possible in FLAC"},
      {[](NodeFlags&, NodeConfig& c) {
         c.output = "mix.wav";
         c.device = "hw:0";
       },
       "--host-api and --device do not apply"},
      {[](NodeFlags&, NodeConfig& c) { c.max_sources = 0; }, "--max-sources 0 is outside 1..1024"},
      {[](NodeFlags&, NodeConfig& c) { c.max_sources_per_host = 1025; },
       "--max-sources-per-host 1025 is outside 0..1024"},
  };
  for (const Case& c : cases) {
    NodeFlags f = one_listen();
    NodeConfig base;
    c.set(f, base);
    const std::string err = config_error(f, base);
    EXPECT_NE(err.find(c.says), std::string::npos)
        << "expected '" << c.says << "', got '" << err << "'";
  }
  // The boundaries themselves are accepted.
  NodeFlags f = one_listen();
  f.latency = "10s";
  f.min_latency = f.max_latency = "10s";
  f.render_lead = "1s";
  f.rtcp_min_interval = "100ms";
  f.routes = {"port:5004=1,2"};
  NodeConfig base;
  base.output = "MIX.FLAC";
  base.output_format = "s24";
  EXPECT_EQ(config_error(f, base), "");
}

TEST(Config, RawAndTokenFlagsApplyWhereTheySay) {
  NodeFlags f = one_listen();
  f.listens.push_back("127.0.0.1:5006");
  f.raws = {{1, "s16le/8000/1"}};
  const std::string token = ::testing::TempDir() + "/token";
  std::ofstream(token) << "  s3cret \n";
  f.http = "127.0.0.1:8080";
  f.http_token_file = token;
  std::string err;
  const auto cfg = make_node_config(f, {}, err);
  ASSERT_TRUE(cfg) << err;
  EXPECT_FALSE(cfg->listens[0].raw);
  ASSERT_TRUE(cfg->listens[1].raw);
  EXPECT_EQ(cfg->listens[1].raw->audio_rate, 8000u);
  EXPECT_EQ(cfg->http_token, "s3cret");
  f.http.clear();
  EXPECT_NE(config_error(f).find("--http-token-file needs --http"), std::string::npos);
}

// Issue #17: --sdp FILE becomes listen specs: a multicast group is joined with its
// source-filter, a unicast address is received on the wildcard address; the payload map is the
// SDP's with --payload on top; a=rtcp moves RTCP; errors name the file.
TEST(Config, SdpFilesBecomeListensWithTheirPayloadMaps) {
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/aes67.sdp")
      << "v=0\r\no=- 1 1 IN IP4 169.254.1.2\r\ns=Stage\r\nc=IN IP4 239.69.1.2/32\r\nt=0 0\r\n"
         "m=audio 5004 RTP/AVP 97\r\na=rtpmap:97 L24/48000/2\r\na=ptime:1\r\n"
         "a=ts-refclk:ptp=IEEE1588-2008:00-11-22-FF-FE-33-44-55:0\r\na=mediaclk:direct=0\r\n"
         "a=source-filter: incl IN IP4 239.69.1.2 169.254.1.2\r\n"
         "m=audio 5010 RTP/AVP 96\r\nc=IN IP4 192.0.2.7\r\na=rtpmap:96 opus/48000/2\r\n"
         "a=rtcp:5020\r\n";
  NodeFlags f;
  f.sdps = {dir + "/aes67.sdp"};
  f.payloads = {"98=pcma/8000"};
  std::string err;
  const auto cfg = make_node_config(f, {}, err);
  ASSERT_TRUE(cfg) << err;
  ASSERT_EQ(cfg->listens.size(), 2u);
  const ListenSpec& mc = cfg->listens[0];
  EXPECT_EQ(mc.address, "239.69.1.2");
  EXPECT_EQ(mc.port, 5004);
  EXPECT_EQ(mc.source_addresses, (std::vector<std::string>{"169.254.1.2"}));
  ASSERT_TRUE(mc.payloads);
  EXPECT_EQ(mc.payloads->find(97)->codec, Codec::l24);
  EXPECT_EQ(mc.payloads->find(98)->codec, Codec::pcma);  // --payload applies too
  EXPECT_EQ(mc.payloads->find(0)->codec, Codec::pcmu);   // static types stay
  EXPECT_FALSE(mc.rtcp_port);
  EXPECT_NE(mc.sdp_summary.find("'Stage' L24/48000/2 (PT 97), ptime 1 ms, senders 169.254.1.2"),
            std::string::npos)
      << mc.sdp_summary;
  // RFC 7273: the PTP clock with a direct media clock at offset 0 (issue #19).
  EXPECT_NE(mc.sdp_summary.find("timestamps on the ptp clock (RFC 7273, offset 0)"),
            std::string::npos)
      << mc.sdp_summary;
  ASSERT_TRUE(mc.media_clock);
  EXPECT_EQ(mc.media_clock->reference, MediaClock::Reference::ptp);
  EXPECT_EQ(mc.media_clock->offset, 0u);
  const ListenSpec& uc = cfg->listens[1];
  EXPECT_EQ(uc.address, "0.0.0.0");  // the stream is sent to this host: any local address
  EXPECT_EQ(uc.port, 5010);
  EXPECT_EQ(uc.rtcp_port, std::optional<std::uint16_t>(5020));
  EXPECT_FALSE(uc.media_clock) << "no a=mediaclk: no media clock";
  EXPECT_TRUE(uc.source_addresses.empty());
  // A --payload that overrides the SDP's own mapping wins.
  f.payloads = {"97=l16/48000/2"};
  const auto over = make_node_config(f, {}, err);
  ASSERT_TRUE(over) << err;
  EXPECT_EQ(over->listens[0].payloads->find(97)->codec, Codec::l16);

  std::ofstream(dir + "/srtp.sdp") << "v=0\nc=IN IP4 10.0.0.1\nm=audio 5004 RTP/SAVP 0\n";
  f.sdps = {dir + "/srtp.sdp"};
  EXPECT_NE(config_error(f).find("srtp.sdp: m=audio 5004 uses RTP/SAVP (SRTP"), std::string::npos)
      << config_error(f);
  f.sdps = {dir + "/missing.sdp"};
  EXPECT_NE(config_error(f).find("--sdp " + dir + "/missing.sdp: cannot open"), std::string::npos)
      << config_error(f);
  std::ofstream(dir + "/video.sdp") << "v=0\nc=IN IP4 10.0.0.1\nm=video 5004 RTP/AVP 96\n";
  f.sdps = {dir + "/video.sdp"};
  EXPECT_NE(config_error(f).find("video.sdp: no m=audio section"), std::string::npos);
}

// Issue #14: --select chooses among discovered calls only.
TEST(Config, SelectNeedsACaptureWithoutListen) {
  NodeFlags f = one_listen();
  NodeConfig base;
  base.select = "abc@host";
  EXPECT_NE(config_error(f, base).find("--select chooses among the calls"), std::string::npos);
  f.listens.clear();
  base.pcap = "x.pcap";
  EXPECT_EQ(config_error(f, base), "");
  base.select = "";
  EXPECT_NE(config_error(f, base).find("--select: give a Call-ID"), std::string::npos);
}

// Issue #14: a capture into a file renders offline; --real-time keeps its pace, and means
// nothing without both; absolute playout needs the wall clock an offline render does not follow.
TEST(Config, OfflineRenderIsACaptureIntoAFileAndRealTimeNeedsBoth) {
  NodeFlags f;
  NodeConfig base;
  base.pcap = "x.pcap";
  EXPECT_EQ(config_error(f, base), "");
  EXPECT_FALSE(base.offline());  // to a device: real time
  base.output = "mix.wav";
  EXPECT_EQ(config_error(f, base), "");
  EXPECT_TRUE(base.offline());
  base.real_time = true;
  EXPECT_EQ(config_error(f, base), "");
  EXPECT_FALSE(base.offline());
  base.output.clear();
  EXPECT_NE(config_error(f, base).find("--real-time paces a --pcap replay into an --output file"),
            std::string::npos);
  base.output = "mix.wav";
  base.real_time = false;
  f.sync = "absolute";
  EXPECT_NE(config_error(f, base).find("--sync absolute plays on this machine's wall clock"),
            std::string::npos);
  base.real_time = true;
  EXPECT_EQ(config_error(f, base), "");
}

TEST(Config, SapFlagsNameTheGroupsAndAreCheckedAgainstTheOtherInputs) {
  NodeFlags f;
  f.saps = {"default", "127.0.0.1:19875"};
  f.payloads = {"127=l24/48000/2"};
  std::string err;
  auto cfg = make_node_config(f, {}, err);
  ASSERT_TRUE(cfg) << err << " (--sap alone is something to receive)";
  ASSERT_EQ(cfg->sap.size(), 4u);
  EXPECT_EQ(cfg->sap[0].describe(), "224.2.127.254:9875");
  EXPECT_EQ(cfg->sap[1].describe(), "224.0.0.56:9875");
  EXPECT_EQ(cfg->sap[2].describe(), "239.255.255.255:9875");
  EXPECT_EQ(cfg->sap[3].describe(), "127.0.0.1:19875");
  EXPECT_EQ(cfg->payload_flags, f.payloads) << "kept for the SDPs SAP announces later";
  f.saps = {"nowhere"};
  EXPECT_FALSE(make_node_config(f, {}, err));
  EXPECT_NE(err.find("--sap"), std::string::npos) << err;
  f.saps = {};
  NodeConfig base;
  base.sap_filter = "Studio*";
  f.listens = {"127.0.0.1:5004"};
  EXPECT_FALSE(make_node_config(f, base, err));
  EXPECT_EQ(err, "--sap-filter needs --sap");
  f.saps = {"default"};
  base.pcap = "x.pcap";
  f.listens = {};
  EXPECT_FALSE(make_node_config(f, base, err));
  EXPECT_NE(err.find("not with --pcap"), std::string::npos) << err;
}

// Issue #16 finding 4: by default one host holds at most half of --max-sources (at least one);
// a capture file has no limit (its media gateway may send every call); 0 turns it off.
TEST(Config, SourcesPerHostDefaultsToHalfOfMaxSourcesExceptForACapture) {
  NodeConfig c;
  EXPECT_EQ(c.sources_per_host_limit(), 32);
  c.max_sources = 1;
  EXPECT_EQ(c.sources_per_host_limit(), 1);
  c.pcap = "calls.pcap";
  EXPECT_EQ(c.sources_per_host_limit(), 0);
  c.max_sources_per_host = 3;
  EXPECT_EQ(c.sources_per_host_limit(), 3);
  c.max_sources_per_host = 0;
  c.pcap.clear();
  EXPECT_EQ(c.sources_per_host_limit(), 0);
}
