// System tests of issue #7 (RTCP receiver reports, the HTTP endpoint under abuse) and of the
// control endpoint of issue #4: real rtpnode processes on a JACK dummy server, test peers on
// 127.0.0.1 (and a network namespace pair for the non-local client).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "node/source.hpp"
#include "rtp/rtcp.hpp"
#include "rtp/rtp_header.hpp"
#include "support/packet_builder.hpp"
#include "support/prometheus_check.hpp"
#include "system/harness.hpp"
#include "system/jack_probe.hpp"

using namespace rtpnode;
using namespace rtpnode::systest;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

/// Two UDP sockets on 127.0.0.1 ports P and P + 1 (RTP and RTCP of one sender, RFC 3550 §11).
struct SenderPorts {
  int rtp = -1, rtcp = -1, port = 0;
  SenderPorts() {
    for (int attempt = 0; attempt < 50 && port == 0; ++attempt) {
      const int p = free_udp_port() & ~1;  // even RTP port
      const int a = bind_udp(p), b = a >= 0 ? bind_udp(p + 1) : -1;
      if (a >= 0 && b >= 0) {
        rtp = a;
        rtcp = b;
        port = p;
      } else {
        if (a >= 0) close(a);
        if (b >= 0) close(b);
      }
    }
    if (port == 0) throw std::runtime_error("no free UDP port pair");
    timeval tv{0, 100'000};
    setsockopt(rtcp, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~SenderPorts() {
    close(rtp);
    close(rtcp);
  }
  static int bind_udp(int p) {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(p));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }
};

void send_to(int fd, int port, const std::vector<std::uint8_t>& data) {
  ASSERT_TRUE(send_loopback(fd, port, data));
}

/// A UDP socket bound to IPv4 address `host` (host byte order, e.g. 0x7f000002), any port; -1
/// with errno set on failure.
int udp_socket_on(std::uint32_t host) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(host);
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::uint64_t ntp_now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const std::uint64_t secs = static_cast<std::uint64_t>(ts.tv_sec) + 2208988800ull;
  return (secs << 32) |
         static_cast<std::uint64_t>((static_cast<double>(ts.tv_nsec) / 1e9) * 4294967296.0);
}

std::vector<std::string> node_argv(int port, const std::string& dir,
                                   std::vector<std::string> extra) {
  std::vector<std::string> argv{RTPNODE_BIN,
                                "--host-api",
                                "jack",
                                "--client-name",
                                "rtpn",
                                "--listen",
                                "127.0.0.1:" + std::to_string(port),
                                "--stats-json",
                                dir + "/stats.json",
                                "--stats-interval",
                                "1s"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

}  // namespace

TEST(Rtcp, ReceiverReportsToATestPeerCarryFractionLostJitterAndLsr) {
  // The peer sends 6 s of PCMU with every 10th packet missing and every other packet 5 ms late,
  // plus one SR at the start. rtpnode must send RRs to the SR's source address with the
  // RFC 3550 figures: fraction lost 10 % (25/256), jitter 5 ms = 40 ticks at 8 kHz, LSR the
  // middle bits of that SR's NTP time, DLSR the time since it arrived.
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int node_port = free_udp_port() & ~1;
  Process node(node_argv(node_port, dir,
                         {"--duration", "12s", "--latency", "100ms", "--rtcp-min-interval", "1s"}),
               dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_1")) << node.log();
  std::this_thread::sleep_for(500ms);

  SenderPorts peer;
  test::PacketBuilder b;
  b.ssrc = 0x5eed0001;
  const std::vector<std::uint8_t> payload(160, 0xff);  // PCMU silence
  std::atomic<bool> done{false};
  std::vector<std::pair<std::chrono::steady_clock::time_point, RtcpCompound>> reports;
  std::thread receiver([&] {
    std::vector<std::uint8_t> buf(2048);
    while (!done.load()) {
      const ssize_t n = recv(peer.rtcp, buf.data(), buf.size(), 0);
      if (n <= 0) continue;
      RtcpCompound c;
      if (rtcp_parse(std::span(buf.data(), static_cast<std::size_t>(n)), c) == RtcpParseStatus::ok)
        reports.emplace_back(std::chrono::steady_clock::now(), c);
    }
  });
  const int kPackets = 300;  // 6 s
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t sr_ntp = 0;
  std::chrono::steady_clock::time_point sr_sent;
  int dropped = 0;
  std::vector<std::pair<int, std::chrono::steady_clock::time_point>>
      sent;  // sequence number, send time
  for (int i = 0; i < kPackets; ++i) {
    if (i == 2) {
      RtcpSenderReport sr;
      sr.ssrc = b.ssrc;
      sr.ntp = sr_ntp = ntp_now();
      sr.rtp_ts = static_cast<std::uint32_t>(i * 160);
      send_to(peer.rtcp, node_port + 1, rtcp_build_sender_report(sr, "peer@test"));
      sr_sent = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_until(t0 + i * 20ms + (i % 2 ? 5ms : 0ms));
    if (i % 10 == 9 && i > 10) {  // every 10th lost (not during probation)
      ++dropped;
      continue;
    }
    send_to(peer.rtp, node_port,
            b.build(static_cast<seq_t>(i), static_cast<rtp_ts_t>(i * 160), payload));
    sent.emplace_back(i, std::chrono::steady_clock::now());
  }
  std::this_thread::sleep_for(2500ms);  // one more report after the last packet
  done = true;
  receiver.join();
  EXPECT_EQ(node.wait(15s), std::optional<int>(0)) << node.log();

  ASSERT_GE(reports.size(), 3u) << node.log();
  // Tmin 1 s: intervals of 0.41 to 1.23 s (A.7), so at least three consecutive pairs of reports
  // fall inside the stream's steady part (1 s to 6 s).
  std::string times;
  for (const auto& r : reports)
    times += std::to_string(std::chrono::duration<double>(r.first - t0).count()) + " ";
  // The RFC 3550 A.8 jitter of the packets as actually sent, up to sequence number `h`: the 5 ms
  // pattern plus this thread's wake-up noise, which the node's estimate rightly includes.
  auto sent_jitter = [&](std::uint32_t h) {
    double j = 0;
    for (std::size_t n = 1; n < sent.size() && static_cast<std::uint32_t>(sent[n].first) <= h;
         ++n) {
      const double transit_change =
          std::chrono::duration<double>(sent[n].second - sent[n - 1].second).count() * 8000.0 -
          (sent[n].first - sent[n - 1].first) * 160.0;
      j += (std::abs(transit_change) - j) / 16.0;
    }
    return j;
  };
  int checked = 0;
  std::string jitters;
  for (std::size_t k = 0; k < reports.size(); ++k) {
    const RtcpCompound& c = reports[k].second;
    ASSERT_EQ(c.report_blocks.size(), 1u);
    ASSERT_EQ(c.cnames.size(), 1u);  // SDES CNAME in every compound (§6.1)
    EXPECT_EQ(c.cnames[0].first, c.report_blocks[0].reporter);
    EXPECT_EQ(c.cnames[0].second.rfind("rtpnode@", 0), 0u);
    const RtcpReportBlock& rb = c.report_blocks[0];
    EXPECT_EQ(rb.ssrc, b.ssrc);
    if (k > 0 && reports[k].first - t0 < 6s && reports[k - 1].first - t0 > 1s) {
      // An interval inside the steady part: the fraction lost between the two reports' highest
      // sequence numbers (RFC 3550 A.3), 10 % give or take where the interval cuts the pattern.
      const std::uint32_t from = reports[k - 1].second.report_blocks[0].highest_seq,
                          to = rb.highest_seq;
      int lost = 0;
      for (std::uint32_t q = from + 1; q <= to; ++q) lost += (q % 10 == 9 && q > 10) ? 1 : 0;
      ASSERT_GT(to, from);
      EXPECT_EQ(rb.fraction_lost, (lost << 8) / static_cast<int>(to - from))
          << "report " << k << ": " << from << ".." << to;
      const double expected_jitter = sent_jitter(rb.highest_seq);
      EXPECT_NEAR(expected_jitter, 40.0, 12.0) << "report " << k;  // the pattern's 5 ms dominates
      EXPECT_NEAR(rb.jitter, expected_jitter, 2.0) << "report " << k << " at " << times;
      jitters += std::to_string(rb.jitter) + "/" + std::to_string(expected_jitter) + " ";
      EXPECT_EQ(rb.lsr, static_cast<std::uint32_t>(sr_ntp >> 16));
      const double dlsr_s = rb.dlsr / 65536.0;
      const double since_sr = std::chrono::duration<double>(reports[k].first - sr_sent).count();
      EXPECT_NEAR(dlsr_s, since_sr, 0.05) << "report " << k;
      ++checked;
    }
  }
  EXPECT_GE(checked, 3) << "reports at (s after the first packet): " << times;
  std::cout << "RR jitter / jitter of the send times (ticks): " << jitters << "\n";
  const RtcpReportBlock& last = reports.back().second.report_blocks[0];
  EXPECT_EQ(last.highest_seq, static_cast<std::uint32_t>(kPackets - 2));  // 299 was one of the lost
  EXPECT_EQ(last.cumulative_lost, dropped - 1);  // the last loss is past the highest
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  EXPECT_GE(stats["node"]["receiver_reports_sent"].get<int>(), static_cast<int>(reports.size()));
}

TEST(EventLog, ExplainsAnXrunALoopStallAndADriftBeyondTheLimit) {
  // Three of this node's own troubles, provoked: its event loop thread is held for 250 ms (the
  // audio callback runs on, so the audio rendered ahead runs out: an underrun, caused by the loop
  // stall, not by the stream), the whole process is stopped for 150 ms (JACK reports an xrun),
  // and the sender's clock is 8000 ppm fast, beyond the 5000 ppm drift compensation corrects.
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int node_port = free_udp_port();
  const std::string events = dir + "/events.jsonl";
  Process node(node_argv(node_port, dir, {"--duration", "15s", "--event-log", events}),
               dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_1")) << node.log();
  std::this_thread::sleep_for(300ms);
  Process sender({RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--duration", "11s",
                  "--skew-ppm", "8000", "--dest", "127.0.0.1:" + std::to_string(node_port)},
                 dir + "/rtpsend.log");
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_until(t0 + 3500ms);
  ASSERT_TRUE(freeze_thread(node.pid(), 250ms)) << "ptrace";  // the main thread runs the loop
  std::this_thread::sleep_until(t0 + 5500ms);
  node.signal(SIGSTOP);
  std::this_thread::sleep_for(150ms);
  node.signal(SIGCONT);
  EXPECT_EQ(sender.wait(20s), std::optional<int>(0)) << sender.log();
  EXPECT_EQ(node.wait(15s), std::optional<int>(0)) << node.log();

  std::ifstream in(events);
  std::map<std::string, int> kinds;
  int loop_underruns = 0, loop_concealments = 0, stream_stalled = 0;
  json drift_limit;
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line);
    const std::string kind = e["event"];
    ++kinds[kind];
    const std::string cause = e.value("cause", "");
    if (kind == "underrun" && cause == "loop_stalled") {
      ++loop_underruns;
      // The loop's lateness past its render deadline: the 250 ms, less what it was to sleep
      // anyway when the freeze began (at most Node::kMaxRenderSleepMs = 100 ms; with this 8000
      // ppm sender the ring holds ~190 ms, and 216 and 178 ms were seen), and far beyond the
      // 31 ms render lead.
      EXPECT_GE(e["loop_stall_ms"].get<double>(), 145.0) << line;
      EXPECT_LE(e["loop_stall_ms"].get<double>(), 600.0) << line;
      EXPECT_GT(e["underrun_frames"].get<int>(), 0) << line;
    }
    if (kind == "concealment_burst" && cause == "loop_stalled") ++loop_concealments;
    if ((kind == "underrun" || kind == "concealment_burst") && cause == "stream_stalled")
      ++stream_stalled;
    if (kind == "drift_limit") drift_limit = e;
    std::cout << line.substr(0, 300) << "\n";
  }
  EXPECT_GE(kinds["xrun"], 1) << "the 150 ms SIGSTOP";
  EXPECT_GE(loop_underruns, 1) << "the 250 ms loop stall";
  EXPECT_GE(loop_concealments, 1);
  EXPECT_EQ(stream_stalled, 0) << "the stream never stalled: these were the node's own stalls";
  EXPECT_EQ(kinds["drift_limit"], 1);
  ASSERT_FALSE(drift_limit.is_null());
  EXPECT_NEAR(drift_limit["drift_ppm"].get<double>(), 8000.0, 300.0) << drift_limit.dump();
  EXPECT_EQ(drift_limit["drift_limit_ppm"].get<double>(), 5000.0);
  EXPECT_EQ(kinds["source_joined"], 1);
  EXPECT_EQ(kinds["source_drained"], 1);
}

TEST(EventLog, RecordsAPayloadTypeChangeOnce) {
  // A sender switches its SSRC from PCMU (0) to PCMA (8) after 2 s: one event when it starts,
  // every such packet counted (for loss, not played).
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int node_port = free_udp_port();
  const std::string events = dir + "/events.jsonl";
  Process node(node_argv(node_port, dir, {"--duration", "5s", "--event-log", events}),
               dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_1")) << node.log();
  std::this_thread::sleep_for(300ms);
  SenderPorts peer;
  test::PacketBuilder b;
  b.ssrc = 0x5eed0002;
  const std::vector<std::uint8_t> payload(160, 0xd5);  // silence in both laws' neighbourhood
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 150; ++i) {
    b.pt = i < 100 ? 0 : 8;
    std::this_thread::sleep_until(t0 + i * 20ms);
    send_to(peer.rtp, node_port,
            b.build(static_cast<seq_t>(i), static_cast<rtp_ts_t>(i * 160), payload));
  }
  EXPECT_EQ(node.wait(10s), std::optional<int>(0)) << node.log();
  std::ifstream in(events);
  int changes = 0;
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line);
    if (e["event"] != "payload_type_changed") continue;
    ++changes;
    EXPECT_EQ(e["ssrc"], "0x5eed0002");
    EXPECT_GE(e["packets"].get<int>(), 1);
  }
  EXPECT_EQ(changes, 1);
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  ASSERT_EQ(stats["sources"].size(), 1u) << stats.dump(2);
  EXPECT_EQ(stats["sources"][0]["packets_other_payload_type"], 50);
  EXPECT_EQ(stats["sources"][0]["packets_lost"], 0);
}

TEST(Sync, ReportedArrivalToDacDelayMatchesTheCaptureWithinOneMillisecond) {
  // Issue #4 test 2. A test peer sends L16 48 kHz with a one-sample impulse at the start of one
  // packet per second and notes when it sent each (loopback: arrival within tens of µs). A JACK
  // probe client records rtpnode's output with the time of every cycle, so the DAC instant of
  // each impulse is known on CLOCK_MONOTONIC (cycle start + offset + the port's playback latency,
  // JACK's own model of what lies between the port and the DAC). rtpnode's reported
  // arrival_to_dac_ms must equal the measured send -> DAC delay within 1 ms.
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int node_port = free_udp_port();
  Process node(node_argv(node_port, dir,
                         {"--duration", "9s", "--payload", "97=L16/48000/1", "--latency", "60ms",
                          "--drift", "off"}),
               dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_0")) << node.log();
  JackProbe probe("rtpn:out_0", 12.0);
  std::this_thread::sleep_for(300ms);

  SenderPorts peer;
  test::PacketBuilder b;
  b.pt = 97;
  b.ssrc = 0x5eed0003;
  constexpr int kFrames = 960;  // 20 ms
  const std::vector<std::uint8_t> silence(kFrames * 2, 0);
  std::vector<std::uint8_t> impulse = silence;
  impulse[0] = 0x40;  // 16384 big-endian: 0.5
  // The playout of a packet is fixed by its RTP timestamp (fixed latency, no drift control), but
  // its arrival is whenever this thread got to send it: on a loaded machine a few ms late. So the
  // DAC instants are checked against the send schedule, and the reported exponential mean of
  // arrival -> DAC against the same mean of (DAC - actual send) over every packet.
  constexpr int kPackets = 300;
  std::vector<std::int64_t> scheduled_ns(kPackets), sent_ns(kPackets);
  std::vector<int> impulse_packets;
  const auto t0 = std::chrono::steady_clock::now();
  auto ns = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  };
  for (int i = 0; i < kPackets; ++i) {
    std::this_thread::sleep_until(t0 + i * 20ms);
    const bool is_impulse = i % 50 == 25;
    send_to(peer.rtp, node_port,
            b.build(static_cast<seq_t>(i), static_cast<rtp_ts_t>(i * kFrames),
                    is_impulse ? impulse : silence));
    sent_ns[i] = ns(std::chrono::steady_clock::now());
    scheduled_ns[i] = ns(t0 + i * 20ms);
    if (is_impulse) impulse_packets.push_back(i);
  }
  std::this_thread::sleep_for(1s);
  probe.stop();
  EXPECT_EQ(node.wait(15s), std::optional<int>(0)) << node.log();

  std::vector<std::size_t> found;
  for (std::size_t i = 0; i < probe.frames(); ++i)
    if (probe.samples()[i] > 0.25f) found.push_back(i);
  ASSERT_EQ(found.size(), impulse_packets.size()) << "one impulse per packet that carried one";
  // Per impulse: DAC instant - scheduled send (fixed unless the device slipped).
  std::vector<double> playout_ms;
  double lo = 1e18, hi = -1e18;
  for (std::size_t k = 0; k < found.size(); ++k) {
    EXPECT_EQ(probe.samples()[found[k]], 0.5f);  // L16 at the device rate passes untouched
    const int i = impulse_packets[k];
    playout_ms.push_back(static_cast<double>(probe.dac_ns(found[k]) - scheduled_ns[i]) / 1e6);
    std::printf(
        "impulse %zu: scheduled send -> DAC %.3f ms, actual send -> DAC %.3f ms (sent %.3f ms "
        "late; "
        "its cycle woke %.3f ms late)\n",
        k, playout_ms.back(), static_cast<double>(probe.dac_ns(found[k]) - sent_ns[i]) / 1e6,
        static_cast<double>(sent_ns[i] - scheduled_ns[i]) / 1e6,
        static_cast<double>(probe.wake_lateness_ns(found[k])) / 1e6);
    lo = std::min(lo, playout_ms.back());
    hi = std::max(hi, playout_ms.back());
  }
  // The node's figure: Source::kDelayMeanWeight's exponential mean over the decoded packets.
  // Packet i plays at its schedule + the playout offset of the latest impulse at or before it.
  double measured = 0;
  for (int i = 0; i < kPackets; ++i) {
    std::size_t k = 0;
    while (k + 1 < impulse_packets.size() && impulse_packets[k + 1] <= i) ++k;
    const double d = static_cast<double>(scheduled_ns[i] - sent_ns[i]) / 1e6 + playout_ms[k];
    measured = i == 0 ? d : measured + Source::kDelayMeanWeight * (d - measured);
  }
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  ASSERT_EQ(stats["sources"].size(), 1u) << stats.dump(2);
  const double reported = stats["sources"][0]["arrival_to_dac_ms"].get<double>();
  std::printf(
      "arrival -> DAC: reported %.3f ms, measured in the capture %.3f ms (%zu impulses, playout "
      "%.3f..%.3f ms "
      "after the schedule; JACK playback latency %u frames; JACK xruns %d)\n",
      reported, measured, found.size(), lo, hi, probe.playback_latency_frames(), probe.xruns());
  if (probe.xruns() == 0) {
    EXPECT_LT(hi - lo, 0.5) << "the delay is fixed: every impulse the same";
  }
  EXPECT_NEAR(reported, measured, 1.0);
}

namespace {
std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
/// NTP timestamp (RFC 3550 §4) of a wall-clock instant in ns since the Unix epoch.
std::uint64_t ntp_of_unix_ns(std::int64_t ns) {
  const auto secs = static_cast<std::uint64_t>(ns / 1'000'000'000) + 2208988800ull;
  const auto frac =
      static_cast<std::uint64_t>(static_cast<double>(ns % 1'000'000'000) / 1e9 * 4294967296.0);
  return (secs << 32) | frac;
}
}  // namespace

TEST(Sync, ReportedCaptureToDacDelayMatchesTheCaptureWithinOneMillisecond) {
  // Issue #4 test 2 with RTCP SR: two test senders on one NTP clock (this machine's) say in their
  // SRs that RTP timestamp 0 was captured 40 ms before the first packet was sent. rtpnode places
  // both on that timeline and reports capture_to_dac_ms: the DAC instant (receiver wall clock)
  // minus the capture instant the SR gives. The probe measures the same from the impulses.
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int port_a = free_udp_port() & ~1;
  SenderPorts peer_a, peer_b;
  int port_b = free_udp_port() & ~1;
  while (port_b == port_a) port_b = free_udp_port() & ~1;
  Process node(node_argv(port_a, dir,
                         {"--duration", "10s", "--payload", "97=L16/48000/1", "--latency", "60ms",
                          "--drift", "off", "--listen", "127.0.0.1:" + std::to_string(port_b),
                          "--route", "port:" + std::to_string(port_a) + "=L", "--route",
                          "port:" + std::to_string(port_b) + "=R"}),
               dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_0")) << node.log();
  JackProbe probe("rtpn:out_0", 13.0);
  std::this_thread::sleep_for(300ms);

  constexpr int kFrames = 960;
  const std::vector<std::uint8_t> silence(kFrames * 2, 0);
  std::vector<std::uint8_t> impulse = silence;
  impulse[0] = 0x40;
  test::PacketBuilder a, b;
  a.pt = b.pt = 97;
  a.ssrc = 0x5eed00a1;
  b.ssrc = 0x5eed00b2;
  const std::int64_t wall_minus_mono = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t t0_mono =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
  const std::int64_t capture0_wall =
      t0_mono + wall_minus_mono - 40'000'000;  // RTP ts 0 captured then
  auto send_sr = [&](SenderPorts& peer, const test::PacketBuilder& pb, int port, std::uint32_t ts) {
    RtcpSenderReport sr;
    sr.ssrc = pb.ssrc;
    sr.rtp_ts = ts;
    sr.ntp = ntp_of_unix_ns(capture0_wall + static_cast<std::int64_t>(ts) * 1'000'000'000 / 48000);
    send_to(peer.rtcp, port + 1, rtcp_build_sender_report(sr, "peer@test"));
  };
  std::vector<std::uint32_t> impulse_ts;
  for (int i = 0; i < 350; ++i) {
    std::this_thread::sleep_until(t0 + i * 20ms);
    const auto ts = static_cast<std::uint32_t>(i * kFrames);
    if (i % 50 == 1) {
      send_sr(peer_a, a, port_a, ts);
      send_sr(peer_b, b, port_b, ts);
    }
    const bool is_impulse = i % 50 == 25 && i > 100;  // after both are placed on the timeline
    send_to(peer_a.rtp, port_a, a.build(static_cast<seq_t>(i), ts, is_impulse ? impulse : silence));
    send_to(peer_b.rtp, port_b, b.build(static_cast<seq_t>(i), ts, silence));
    if (is_impulse) impulse_ts.push_back(ts);
  }
  std::this_thread::sleep_for(1s);
  probe.stop();
  EXPECT_EQ(node.wait(15s), std::optional<int>(0)) << node.log();

  std::vector<std::size_t> found;
  for (std::size_t i = 0; i < probe.frames(); ++i)
    if (probe.samples()[i] > 0.25f) found.push_back(i);
  ASSERT_EQ(found.size(), impulse_ts.size()) << node.log();
  double sum = 0, lo = 1e18, hi = -1e18, last = 0;
  for (std::size_t k = 0; k < found.size(); ++k) {
    const std::int64_t dac_wall = probe.dac_ns(found[k]) + wall_minus_mono;
    const std::int64_t capture_wall =
        capture0_wall + static_cast<std::int64_t>(impulse_ts[k]) * 1'000'000'000 / 48000;
    const double d = static_cast<double>(dac_wall - capture_wall) / 1e6;
    std::printf("impulse %zu: capture -> DAC %.3f ms (its cycle woke %.3f ms late)\n", k, d,
                static_cast<double>(probe.wake_lateness_ns(found[k])) / 1e6);
    sum += d;
    last = d;
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  const double measured = sum / static_cast<double>(found.size());
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  const json* src_a = nullptr;
  for (const json& src : stats["sources"])
    if (src["port"] == port_a) src_a = &src;
  ASSERT_NE(src_a, nullptr) << stats.dump(2);
  EXPECT_TRUE((*src_a)["synced"].get<bool>()) << src_a->dump(2);
  const double reported = (*src_a)["capture_to_dac_ms"].get<double>();
  std::printf(
      "capture (SR) -> DAC: reported %.3f ms, measured in the capture %.3f ms (%zu impulses, "
      "%.3f..%.3f; "
      "JACK xruns %d)\n",
      reported, measured, found.size(), lo, hi, probe.xruns());
  if (probe.xruns() == 0) {
    EXPECT_LT(hi - lo, 0.5) << "the delay is fixed: every impulse the same";
    EXPECT_NEAR(reported, measured, 1.0);
  } else {
    // A late dummy cycle re-anchors JACK's driver: the device clock slipped, and so did every
    // frame after it. The node's mean follows within a second; compare with the last impulse.
    EXPECT_NEAR(reported, last, 1.0);
  }
}

TEST(Sources, BeyondMaxSourcesAStreamIsRefusedOnceAndAdmittedWhenASlotFrees) {
  // --max-sources 2: A and B play; C, started 0.5 s later, is refused and counted once (not at
  // every packet), then admitted (through probation) once A and B have left with BYE and drained.
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int node_port = free_udp_port();
  const std::string events = dir + "/events.jsonl";
  Process node(
      node_argv(node_port, dir, {"--duration", "9s", "--max-sources", "2", "--event-log", events}),
      dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_1")) << node.log();
  std::this_thread::sleep_for(300ms);
  auto sender = [&](const char* hz, const char* ssrc, const char* seconds) {
    return std::make_unique<Process>(
        std::vector<std::string>{RTPSEND_BIN, "--tone", hz, "--codec", "pcmu", "--ssrc", ssrc,
                                 "--duration", seconds, "--dest",
                                 "127.0.0.1:" + std::to_string(node_port)},
        dir + "/rtpsend-" + ssrc + ".log");
  };
  auto a = sender("440", "43981", "3s");  // 0xabcd
  auto b = sender("660", "43982", "3s");
  std::this_thread::sleep_for(500ms);
  auto c = sender("880", "43983", "6s");
  for (auto* p : {a.get(), b.get(), c.get()})
    EXPECT_EQ(p->wait(20s), std::optional<int>(0)) << p->log();
  EXPECT_EQ(node.wait(15s), std::optional<int>(0)) << node.log();

  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  EXPECT_EQ(stats["node"]["sources_refused"].get<int>(), 1) << stats.dump(2);
  std::ifstream in(events);
  std::vector<std::string> order;  // joins and drains, in order
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line);
    if (e["event"] == "source_joined" || e["event"] == "source_drained")
      order.push_back(e["event"].get<std::string>().substr(7) + ":" + e["ssrc"].get<std::string>());
  }
  ASSERT_EQ(order.size(), 6u) << ::testing::PrintToString(order);
  auto at = [&](const std::string& what) {
    return std::find(order.begin(), order.end(), what) - order.begin();
  };
  // C joins once a slot is free: after A or B drained (a leaving source holds its slot until its
  // audio has played), and after both had joined.
  const auto c_joined = at("joined:0x0000abcf");
  EXPECT_GT(c_joined, std::min(at("drained:0x0000abcd"), at("drained:0x0000abce")))
      << ::testing::PrintToString(order);
  EXPECT_GT(c_joined, std::max(at("joined:0x0000abcd"), at("joined:0x0000abce")));
  EXPECT_EQ(order.back(), "drained:0x0000abcf");
}

TEST(Rtcp, ByeAndSenderReportsFromAnotherHostAreIgnored) {
  // Issue #16 finding 2: SR and BYE were applied by SSRC alone, so anyone could end a live
  // source. A PCMU source from 127.0.0.1 plays 4 s; after 1 s a BYE and an SR for its SSRC come
  // from 127.0.0.2 (another host on the loopback network): the source plays on to its end.
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int node_port = free_udp_port();
  Process node(node_argv(node_port, dir, {"--duration", "7s"}), dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_1")) << node.log();
  std::this_thread::sleep_for(300ms);
  Process sender({RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--ssrc", "43981", "--duration",
                  "4s", "--dest", "127.0.0.1:" + std::to_string(node_port)},
                 dir + "/rtpsend.log");
  std::this_thread::sleep_for(1s);
  const int fd = udp_socket_on(0x7f000002);  // 127.0.0.2: another host on the loopback network
  ASSERT_GE(fd, 0) << std::strerror(errno);
  RtcpSenderReport sr{};
  sr.ssrc = 43981;
  sr.ntp = ntp_now() + (std::uint64_t{3600} << 32);  // an hour off
  sr.rtp_ts = 12345;
  send_to(fd, node_port + 1,
          rtcp_build_sender_report(sr, "spoof@127.0.0.2", true));                 // SR + SDES + BYE
  send_to(fd, node_port, rtcp_build_sender_report(sr, "spoof@127.0.0.2", true));  // muxed on RTP
  close(fd);
  EXPECT_EQ(sender.wait(20s), std::optional<int>(0)) << sender.log();
  EXPECT_EQ(node.wait(15s), std::optional<int>(0)) << node.log();

  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  EXPECT_EQ(stats["node"]["rtcp_foreign"].get<int>(), 4)
      << stats.dump(2);  // 2 compounds x (SR + BYE)
  const json* src = nullptr;
  for (const json& s : stats["sources"])
    if (s["ssrc"] == 43981) src = &s;
  ASSERT_NE(src, nullptr) << stats.dump(2);
  // All 4 s played (200 packets of 20 ms), not 1 s: the spoofed BYE did not end it.
  EXPECT_EQ((*src)["packets_received"].get<int>(), 200) << src->dump(2);
  EXPECT_GT((*src)["frames_played"].get<double>(), 3.9 * 48000) << src->dump(2);
  EXPECT_EQ((*src)["placements"].get<int>(), 0) << src->dump(2);
  EXPECT_NE(node.log().find("from another host"), std::string::npos) << node.log();
}

TEST(Sources, AllowAdmitsOnlyItsAddressBlocksAndCountsTheRest) {
  // Issue #16 finding 4 (admission): --allow 127.0.0.2 admits a PCMU stream sent from 127.0.0.2
  // and drops rtpsend's from 127.0.0.1 (RTP and RTCP), counting them.
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int node_port = free_udp_port();
  Process node(node_argv(node_port, dir, {"--duration", "4s", "--allow", "127.0.0.2"}),
               dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_1")) << node.log();
  std::this_thread::sleep_for(300ms);
  Process sender(
      {RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--ssrc", "1111", "--duration", "2s",
       "--rtcp-interval", "500ms", "--dest", "127.0.0.1:" + std::to_string(node_port)},
      dir + "/rtpsend.log");
  const int fd = udp_socket_on(0x7f000002);  // 127.0.0.2: another host on the loopback network
  ASSERT_GE(fd, 0) << std::strerror(errno);
  test::PacketBuilder b;
  b.ssrc = 2222;
  const std::vector<std::uint8_t> payload(160, 0x55);
  auto next = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) {
    send_to(fd, node_port, b.build(static_cast<seq_t>(i), static_cast<rtp_ts_t>(i * 160), payload));
    next += 20ms;
    std::this_thread::sleep_until(next);
  }
  close(fd);
  EXPECT_EQ(sender.wait(20s), std::optional<int>(0)) << sender.log();
  EXPECT_EQ(node.wait(15s), std::optional<int>(0)) << node.log();
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  ASSERT_EQ(stats["sources"].size(), 1u) << stats.dump(2);
  EXPECT_EQ(stats["sources"][0]["ssrc"], 2222);
  EXPECT_EQ(stats["sources"][0]["packets_received"], 100);
  EXPECT_GE(stats["node"]["packets_not_allowed"].get<int>(), 100)
      << stats.dump(2);  // 100 RTP + its SRs
  EXPECT_NE(node.log().find("not in any --allow block"), std::string::npos) << node.log();
}

TEST(Sources, FloodOfGarbageAndNewSsrcsLeavesAGoodStreamUntouched) {
  // Issue #16: 50 k datagrams/s for 4 s -- 190 k of garbage (not RTP) and 10 k valid RTP packets
  // of 10 k different SSRCs, each seen once (never admitted: RFC 3550 A.1 probation) -- from
  // another loopback host, while a PCMU stream plays and a second one starts. The streams must
  // not underrun or conceal, the garbage is counted, and the node's memory stays bounded.
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int node_port = free_udp_port();
  Process node(node_argv(node_port, dir, {"--duration", "8s"}), dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_1")) << node.log();
  Process sender({RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--ssrc", "4242", "--duration",
                  "6s", "--dest", "127.0.0.1:" + std::to_string(node_port)},
                 dir + "/rtpsend.log");
  std::this_thread::sleep_for(1s);
  const long rss_before = rss_kb(node.pid());
  const int fd = udp_socket_on(0x7f000003);  // 127.0.0.3: another host on the loopback network
  ASSERT_GE(fd, 0) << std::strerror(errno);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(node_port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  test::PacketBuilder b;
  const std::vector<std::uint8_t> payload(160, 0x55);
  std::vector<std::uint8_t> garbage(172);
  std::uint64_t rng = 99;
  int sent_garbage = 0, sent_ssrcs = 0;
  std::unique_ptr<Process> late;  // a second stream that starts in the middle of the flood
  auto next = std::chrono::steady_clock::now();
  for (int ms = 0; ms < 4000; ++ms) {  // 50 datagrams a millisecond
    if (ms == 1000)
      late = std::make_unique<Process>(
          std::vector<std::string>{RTPSEND_BIN, "--tone", "660", "--codec", "pcmu", "--ssrc",
                                   "4343", "--duration", "2s", "--dest",
                                   "127.0.0.1:" + std::to_string(node_port)},
          dir + "/rtpsend-late.log");
    for (int k = 0; k < 50; ++k) {
      std::vector<std::uint8_t> d;
      if ((ms * 50 + k) % 20 == 0 && sent_ssrcs < 10000) {
        b.ssrc = 0x10000000u + static_cast<std::uint32_t>(sent_ssrcs++);
        d = b.build(static_cast<seq_t>(rng), static_cast<rtp_ts_t>(rng), payload);
      } else {
        for (auto& x : garbage) {
          rng = rng * 6364136223846793005ull + 1442695040888963407ull;
          x = static_cast<std::uint8_t>(rng >> 56);
        }
        garbage[0] = static_cast<std::uint8_t>(garbage[0] & 0x3f);  // version 0: never valid RTP
        d = garbage;
        ++sent_garbage;
      }
      (void)sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
    }
    next += 1ms;
    std::this_thread::sleep_until(next);
  }
  close(fd);
  const long rss_after = rss_kb(node.pid());
  EXPECT_EQ(sender.wait(20s), std::optional<int>(0)) << sender.log();
  EXPECT_EQ(late->wait(20s), std::optional<int>(0)) << late->log();
  EXPECT_EQ(node.wait(15s), std::optional<int>(0)) << node.log();
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  const json* good = nullptr;
  for (const json& s : stats["sources"])
    if (s["ssrc"] == 4242) good = &s;
  ASSERT_NE(good, nullptr) << stats.dump(2);
  // None of the 10 k SSRCs was admitted; the stream that started during the flood was, at once
  // (one host's flood holds at most an eighth of the probation table), and played clean.
  EXPECT_EQ(stats["sources"].size(), 2u) << stats.dump(2);
  for (const json& s : stats["sources"]) {
    if (s["ssrc"] != 4343) continue;
    EXPECT_EQ(s["packets_received"], 100) << s.dump(2);
    EXPECT_EQ(s["underruns"], 0) << s.dump(2);
    EXPECT_EQ(s["frames_concealed"], 0) << s.dump(2);
  }
  EXPECT_EQ((*good)["underruns"], 0) << good->dump(2);
  EXPECT_EQ((*good)["frames_concealed"], 0) << good->dump(2);
  EXPECT_EQ((*good)["packets_received"], 300);
  const auto malformed = stats["node"]["packets_malformed"].get<long>();
  // Counted: everything the kernel delivered (on loopback it drops nothing at this rate).
  EXPECT_EQ(malformed, sent_garbage) << stats["node"].dump(2);
  std::printf(
      "flood: %d garbage + %d SSRCs in 4 s; node counted %ld malformed, %ld probation drops; RSS "
      "%ld -> %ld kB\n",
      sent_garbage, sent_ssrcs, malformed, stats["node"]["probation_dropped"].get<long>(),
      rss_before, rss_after);
  EXPECT_LT(rss_after - rss_before, 32 * 1024);  // the probation table is bounded: < 32 MB growth
}

TEST(Loop, SleepsUntilTheNextDeadlineWhilePlaying) {
  // Issue #18: while a 20 ms PCMU stream plays, the loop thread wakes for the datagrams (~50 a
  // second; each is decoded as it comes) and almost never for a deadline, not on a 5 ms tick
  // (200 a second and more); it plays without an underrun, and its lateness past the deadlines
  // stays far inside the render lead.
  const std::string dir = test_dir();
  JackServer jack(dir, 1024);
  const int node_port = free_udp_port();
  Process node(node_argv(node_port, dir, {"--duration", "12s", "--latency", "60ms"}),
               dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_1")) << node.log();
  std::this_thread::sleep_for(300ms);
  Process sender({RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--duration", "10s", "--dest",
                  "127.0.0.1:" + std::to_string(node_port)},
                 dir + "/rtpsend.log");
  // The loop runs on the main thread: its context switches are its wake-ups.
  auto switches = [&] {
    std::ifstream in("/proc/" + std::to_string(node.pid()) + "/task/" + std::to_string(node.pid()) +
                     "/status");
    long total = 0;
    for (std::string line; std::getline(in, line);)
      if (line.find("ctxt_switches:") != std::string::npos)
        total += std::stol(line.substr(line.find(':') + 1));
    return total;
  };
  std::this_thread::sleep_for(3s);
  const long s0 = switches();
  std::this_thread::sleep_for(5s);
  const double per_s = static_cast<double>(switches() - s0) / 5.0;
  EXPECT_EQ(sender.wait(20s), std::optional<int>(0)) << sender.log();
  EXPECT_EQ(node.wait(15s), std::optional<int>(0)) << node.log();
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  ASSERT_EQ(stats["sources"].size(), 1u) << stats.dump(2);
  const double deadlines = stats["node"]["loop_wakeups"].get<double>();
  std::printf(
      "loop thread: %.1f wake-ups/s with 50 datagrams/s; %.0f deadline wakes in 10 s; lateness "
      "p99.9 %.2f ms\n",
      per_s, deadlines, stats["node"]["loop_lateness_p999_ms"].get<double>());
  EXPECT_GE(per_s, 25.0);
  EXPECT_LE(per_s, 90.0);
  EXPECT_LE(deadlines, 10 * 20.0);
  EXPECT_EQ(stats["sources"][0]["underruns"], 0);
  EXPECT_LT(stats["node"]["loop_lateness_p999_ms"].get<double>(),
            stats["node"]["render_lead_ms"].get<double>());
}
