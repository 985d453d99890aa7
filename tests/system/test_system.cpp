// System tests: rtpnode and rtpsend as real processes over 127.0.0.1, PortAudio on a private
// JACK dummy server, rtpnode's output ports recorded by jack_capture in the same JACK graph
// (one sample clock: sample-exact comparison works), assertions on samples and JSON stats.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmath>
#include <ctime>
#include <fstream>
#include <functional>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>

#include <opus/opus.h>

#include "rtp/codec.hpp"

extern "C" {
#include <bcg729/decoder.h>             // the reference decode of captured G.729 frames
#include <opencore-amrnb/interf_enc.h>  // .amr files for GStreamer to stream
}
#include "rtp/rtp_header.hpp"
#include "rtp/sap.hpp"
#include "support/prometheus_check.hpp"
#include "support/tcp_client.hpp"
#include "system/harness.hpp"
#include "system/jack_probe.hpp"

using namespace rtpnode;
using namespace rtpnode::systest;
using nlohmann::json;

namespace {

constexpr int kPeriod = 1024;
// Playout delay for content tests. These VMs stall now and then (rtpsend has measured its own
// send-time error at p99 90-130 ms during such stalls, and JACK reports xruns then); a packet
// later than the playout delay is correctly dropped and the stream re-anchored, which shifts the
// content. Content and counters are what these tests check, so they use a delay above the stalls.
const char* kTestLatency = "300ms";
const char* kAlsaDir = "/usr/share/sounds/alsa/";
const char* kAsteriskDir = "/usr/share/asterisk/sounds/en_US_f_Allison/";

struct Scenario {
  Audio input;                           ///< what rtpsend reads
  std::vector<std::string> node_args;    ///< extra rtpnode flags
  std::vector<std::string> send_args;    ///< rtpsend flags after FILE --dest
  std::function<void(int port)> during;  ///< runs while rtpsend streams
  std::string host = "127.0.0.1";        ///< listen/destination address ("::1" for IPv6)
  std::string netns;                     ///< run rtpnode and rtpsend in this network namespace
  int send_seconds = 0;                  ///< > 0: rtpsend loops the input for this long
  std::string latency = kTestLatency;    ///< rtpnode --latency
  /// rtpnode --drift. Off for the sample-exact comparisons: sender and JACK dummy both run on
  /// this machine's clock, so there is no drift to correct and samples pass through untouched.
  std::string drift = "off";
  bool sample_stats = false;  ///< read --stats-json every second while sending
  /// rtpsend's own worst send-time error (ms) above which the VM stalled the whole run: run again.
  double max_sender_stall_ms = 150.0;
  /// > 0 or true: rtpnode serves --http on 127.0.0.1 (a free port); these run with that port
  /// while rtpsend streams, and after it finished (before rtpnode stops).
  bool http = false;
  std::string http_address = "127.0.0.1";
  std::function<void(int http_port)> during_http;
  std::function<void(int http_port)> after_send;
  /// Render to a WAV file through --output (the file backend) instead of a JACK device and
  /// capture: no JACK server is involved.
  bool file_output = false;
  int period = kPeriod;  ///< the JACK dummy's period (frames), or --period with file_output
  /// >= 0: the JACK server is stopped for freeze_device_ms this many seconds after rtpsend
  /// started (a device stall: an xrun in every client).
  double freeze_device_at_s = -1;
  int freeze_device_ms = 50;
  /// >= 0: rtpnode's loop thread (its main thread) is stopped for freeze_loop_ms this many
  /// seconds after rtpsend started (a loop stall: the callback plays on from the rings).
  double freeze_loop_at_s = -1;
  int freeze_loop_ms = 150;
  /// >= 0: the whole rtpnode process is stopped (SIGSTOP, SIGCONT) for stop_process_ms this
  /// many seconds after rtpsend started: its JACK thread too (JACK skips it: an xrun) and its
  /// loop.
  double stop_process_at_s = -1;
  int stop_process_ms = 150;
  /// Set: rtpnode reads this SDP (given the port) through --sdp instead of --listen.
  std::function<std::string(int port)> sdp;
  /// With `sdp`: rtpnode hears it in a SAP announcement (--sap on a loopback port) instead of a
  /// file, sent once before rtpsend starts. Not with `netns`.
  bool sdp_by_sap = false;
  /// With `sdp_by_sap` and `netns`: rtpnode runs `--sap` with no address (its default groups,
  /// port 9875) and the stream's announcement goes to the first of these groups from inside the
  /// namespace; each further group gets an announcement of another session (another port).
  std::vector<std::string> sap_groups;
};

/// Sends one datagram to 127.0.0.1:`port`.
void send_udp(int port, const std::string& bytes) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  EXPECT_TRUE(
      send_loopback(fd, port, {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}));
  close(fd);
}

struct Result {
  Audio capture;
  json stats;
  std::vector<std::pair<double, json>> series;  ///< (s since rtpsend started, stats) if sampled
  json sent;
  std::string node_log;
};

Result run_once(const Scenario& s, int attempt) {
  const std::string dir = test_dir() + "/attempt" + std::to_string(attempt);
  std::filesystem::create_directories(dir);
  // Where a run is, on stderr (unbuffered): a test that hangs until ctest kills it says where.
  const auto t_start = std::chrono::steady_clock::now();
  auto phase = [&](const char* what) {
    std::fprintf(stderr, "[attempt %d +%.1fs] %s\n", attempt,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(),
                 what);
  };
  // The node appends to an --event-log file: each attempt starts it empty, so that what a test
  // counts is the last attempt's (a CI rerun once counted two attempts' events).
  for (std::size_t i = 0; i + 1 < s.node_args.size(); ++i)
    if (s.node_args[i] == "--event-log") std::filesystem::remove(s.node_args[i + 1]);
  std::optional<JackServer> jack;
  if (!s.file_output) phase("starting JACK");
  if (!s.file_output) jack.emplace(dir, s.period);
  const int port = free_udp_port();
  const std::string endpoint =
      (s.host.find(':') != std::string::npos ? "[" + s.host + "]" : s.host) + ":" +
      std::to_string(port);
  const std::string input = dir + "/input.wav";
  write_wav16(input, s.input);
  const double seconds =
      s.send_seconds > 0 ? s.send_seconds : static_cast<double>(s.input.frames()) / s.input.rate;
  const int node_secs = static_cast<int>(std::ceil(seconds)) + 4;

  std::vector<std::string> where{"--listen", endpoint};
  const int sap_port = s.sdp_by_sap ? free_udp_port() : 0;
  if (s.sdp && s.sdp_by_sap) {
    where = {"--sap", "127.0.0.1:" + std::to_string(sap_port)};
    if (!s.sap_groups.empty()) where = {"--sap"};
  } else if (s.sdp) {
    std::ofstream(dir + "/stream.sdp") << s.sdp(port);
    where = {"--sdp", dir + "/stream.sdp"};
  }
  std::vector<std::string> node{RTPNODE_BIN,
                                "--duration",
                                std::to_string(node_secs) + "s",
                                "--stats-json",
                                dir + "/stats.json",
                                "--stats-interval",
                                "1s",
                                "--latency",
                                s.latency,
                                "--drift",
                                s.drift};
  node.insert(node.begin() + 1, where.begin(), where.end());
  if (s.file_output)
    node.insert(node.end(),
                {"--output", dir + "/capture.wav", "--period", std::to_string(s.period)});
  else
    node.insert(node.end(), {"--host-api", "jack", "--client-name", "rtpn"});
  node.insert(node.end(), s.node_args.begin(), s.node_args.end());
  const int http_port = s.http ? free_tcp_port() : 0;
  if (s.http) node.insert(node.end(), {"--http", s.http_address + ":" + std::to_string(http_port)});
  phase("starting rtpnode");
  Process rtpnode_p(in_netns(s.netns, node), dir + "/rtpnode.log");
  std::optional<Process> capture;
  if (jack) {
    EXPECT_TRUE(jack->wait_for_port("rtpn:out_1")) << rtpnode_p.log();
    capture.emplace(
        std::vector<std::string>{"jack_capture", "-d", std::to_string(node_secs - 1), "--daemon",
                                 "--channels", "2", "--port", "rtpn:out*", dir + "/capture.wav"},
        dir + "/capture.log");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // let the capture connect
  if (s.sdp_by_sap && s.sap_groups.empty()) {
    send_udp(sap_port, build_sap(false, 0x5a5a, "127.0.0.1", s.sdp(port)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // its listen opens
  }
  for (std::size_t i = 0; s.sdp_by_sap && i < s.sap_groups.size(); ++i) {
    const std::string file = dir + "/sap" + std::to_string(i) + ".bin";
    std::ofstream(file, std::ios::binary)
        << build_sap(false, static_cast<std::uint16_t>(0x5a5a + i), "127.0.0.1",
                     s.sdp(i == 0 ? port : free_udp_port()));
    const auto [status, out] = run_command(
        "ip netns exec " + s.netns +
        " python3 -c 'import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
        ".sendto(open(sys.argv[1], \"rb\").read(), (sys.argv[2], 9875))' " +
        file + " " + s.sap_groups[i]);
    EXPECT_EQ(status, 0) << out;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // its listen opens
  }

  std::vector<std::string> send{RTPSEND_BIN, input,          "--dest",
                                endpoint,    "--stats-json", dir + "/sent.json"};
  send.insert(send.end(), s.send_args.begin(), s.send_args.end());
  if (s.send_seconds > 0)
    send.insert(send.end(), {"--loop", "--duration", std::to_string(s.send_seconds) + "s"});
  phase("starting rtpsend");
  Process rtpsend_p(in_netns(s.netns, send), dir + "/rtpsend.log");
  std::thread side;
  if (s.during) side = std::thread([&] { s.during(port); });
  std::thread freezer;
  if (jack && s.freeze_device_at_s >= 0)
    freezer = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::duration<double>(s.freeze_device_at_s));
      jack->pause(std::chrono::milliseconds(s.freeze_device_ms));
    });
  std::thread loop_freezer;
  if (s.freeze_loop_at_s >= 0)
    loop_freezer = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::duration<double>(s.freeze_loop_at_s));
      EXPECT_TRUE(freeze_thread(rtpnode_p.pid(), std::chrono::milliseconds(s.freeze_loop_ms)))
          << "ptrace";
    });
  std::thread process_stopper;
  if (s.stop_process_at_s >= 0)
    process_stopper = std::thread([&] {
      std::this_thread::sleep_for(std::chrono::duration<double>(s.stop_process_at_s));
      rtpnode_p.signal(SIGSTOP);
      std::this_thread::sleep_for(std::chrono::milliseconds(s.stop_process_ms));
      rtpnode_p.signal(SIGCONT);
    });
  std::thread side_http;
  if (s.during_http) side_http = std::thread([&] { s.during_http(http_port); });
  std::atomic<bool> sending{true};
  std::vector<std::pair<double, json>> series;
  std::thread sampler;
  if (s.sample_stats)
    sampler = std::thread([&] {
      const auto t0 = std::chrono::steady_clock::now();
      while (sending.load()) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        std::ifstream in(dir + "/stats.json");  // rewritten atomically (rename)
        json j = json::parse(in, nullptr, false);
        if (!j.is_discarded())
          series.emplace_back(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), j);
      }
    });
  const auto send_rc = rtpsend_p.wait(std::chrono::seconds(node_secs + 5));
  sending = false;
  phase("rtpsend done; joining helper threads");
  if (sampler.joinable()) sampler.join();
  if (side.joinable()) side.join();
  if (freezer.joinable()) freezer.join();
  if (loop_freezer.joinable()) loop_freezer.join();
  if (process_stopper.joinable()) process_stopper.join();
  if (side_http.joinable()) side_http.join();
  EXPECT_EQ(send_rc, std::optional<int>(0)) << rtpsend_p.log();
  phase("waiting for rtpnode");
  if (s.after_send) s.after_send(http_port);
  const auto node_rc = rtpnode_p.wait(std::chrono::seconds(node_secs + 10));
  EXPECT_EQ(node_rc, std::optional<int>(0)) << rtpnode_p.log();
  if (capture) {
    const auto cap_rc = capture->wait(std::chrono::seconds(node_secs + 10));
    EXPECT_TRUE(cap_rc.has_value()) << capture->log();
  }

  phase("done");
  Result r;
  r.series = std::move(series);
  r.node_log = rtpnode_p.log();
  r.capture = read_wav(dir + "/capture.wav");
  std::ifstream(dir + "/stats.json") >> r.stats;
  std::ifstream(dir + "/sent.json") >> r.sent;
  return r;
}

/// True when some source underran and rtpnode's loop, by its own report, woke later than its render
/// lead allows (lateness above the lead less one period): the ring ran dry because the loop thread
/// was not scheduled, not because of anything the stream or the node's logic did.
bool loop_outran_its_lead(const Result& r) {
  if (!r.stats.is_object() || !r.stats.contains("node") || !r.stats["node"].is_object())
    return false;
  const json& n = r.stats["node"];
  const double lead_ms = n.value("render_lead_ms", 0.0);
  const double late_ms = n.value("loop_lateness_max_ms", 0.0);
  const double period_ms = 1000.0 * kPeriod / 48000.0;
  return n.value("underruns", 0) > 0 && lead_ms > 0.0 && late_ms > lead_ms - period_ms;
}

/// Runs a scenario; a run that does not meet the clean-machine precondition (rtpsend itself
/// could not keep its pacing, JACK reported an xrun the scenario did not ask for, or rtpnode's
/// loop woke later than its render lead allows) is run again, up to three runs in all.
Result run(const Scenario& s) {
  const bool asked_for_xrun = s.freeze_device_at_s >= 0 || s.stop_process_at_s >= 0;
  Result r;
  for (int attempt = 1;; ++attempt) {
    r = run_once(s, attempt);
    if (attempt == 3) break;
    const double max_send_error_ms = r.sent.value("/send_error_us/max"_json_pointer, 0.0) / 1000.0;
    // A JACK xrun the scenario did not ask for (the dummy driver's thread was scheduled late):
    // the node keeps each source's wall-clock delay across it (issue #15), so what the capture
    // holds around it is not sample-exact. Measured: a 50 ms device stall costs an exact L16
    // comparison ~15 000 frames, with or without JACK's cycle times (issue #19). Under a
    // parallel ctest, 256-frame periods saw an xrun in two runs in a row (2026-12-01).
    const int xruns = r.stats.is_object() && r.stats.contains("node") && r.stats["node"].is_object()
                          ? r.stats["node"].value("xruns", 0)
                          : 0;
    if (max_send_error_ms > s.max_sender_stall_ms) {
      std::cerr << "note: rtpsend was stalled " << max_send_error_ms
                << " ms (VM scheduling); running again\n";
    } else if (xruns > 0 && !asked_for_xrun && !s.file_output) {
      std::cerr << "note: JACK reported " << xruns << " xrun(s) (VM scheduling); running again\n";
    } else if (loop_outran_its_lead(r) && !asked_for_xrun && s.freeze_loop_at_s < 0 &&
               !s.file_output) {
      // The loop renders render_lead_ms ahead of the device; a wake later than that lead less
      // one period leaves the callback an empty ring whatever the sources do (seen once under
      // ASan on a loaded CI machine: one underrun of a clean raw-PCM stream).
      std::cerr << "note: rtpnode's loop woke "
                << r.stats["node"].value("loop_lateness_max_ms", 0.0)
                << " ms late with a render lead of " << r.stats["node"].value("render_lead_ms", 0.0)
                << " ms (VM scheduling); running again\n";
    } else {
      break;
    }
    wait_for_quiet_machine();
  }
  return r;
}

/// Two distinct real recordings, one per channel, 48 kHz.
Audio stereo_recording() {
  const Audio l = load_recording(std::string(kAlsaDir) + "Front_Center.wav");
  const Audio r = load_recording(std::string(kAlsaDir) + "Front_Left.wav");
  Audio a;
  a.rate = l.rate;
  a.channels = 2;
  const std::size_t n = std::max(l.frames(), r.frames());
  a.samples.assign(n * 2, 0.0f);
  for (std::size_t i = 0; i < l.frames(); ++i) a.samples[2 * i] = l.samples[i];
  for (std::size_t i = 0; i < r.frames(); ++i) a.samples[2 * i + 1] = r.samples[i];
  return a;
}

Audio speech_8k() {
  return load_recording(std::string(kAsteriskDir) + "agent-loggedoff.wav");
}

/// Encodes with our encoder and decodes with a fresh decoder: what the receiver should decode.
Audio reference_decode(const Audio& in, const PayloadFormat& f, int frames_per_packet) {
  auto enc = make_encoder(f);
  auto dec = make_decoder(f);
  Audio out;
  out.rate = static_cast<int>(f.audio_rate);
  out.channels = 1;
  std::vector<std::int16_t> pcm(static_cast<std::size_t>(frames_per_packet));
  std::vector<std::uint8_t> bits(4096);
  std::vector<float> frame(static_cast<std::size_t>(frames_per_packet));
  for (std::size_t pos = 0; pos < in.frames(); pos += static_cast<std::size_t>(frames_per_packet)) {
    std::fill(pcm.begin(), pcm.end(), 0);
    for (std::size_t i = 0; i < pcm.size() && pos + i < in.frames(); ++i)
      pcm[i] = static_cast<std::int16_t>(std::lround(in.samples[pos + i] * 32768.0f));
    const int n = enc->encode(pcm, frames_per_packet, bits);
    const int got = dec->decode(std::span(bits.data(), static_cast<std::size_t>(n)), frame);
    out.samples.insert(out.samples.end(), frame.begin(), frame.begin() + got);
  }
  return out;
}

const json& only_source(const Result& r) {
  static const json empty = json::object();
  if (r.stats["sources"].size() != 1) {
    ADD_FAILURE() << "expected one source, stats: " << r.stats.dump(2);
    return empty;
  }
  return r.stats["sources"][0];
}

void expect_clean_stats(const Result& r) {
  const json& s = only_source(r);
  EXPECT_EQ(s.value("packets_received", -1), r.sent["packets"].get<int>());
  EXPECT_EQ(s.value("packets_lost", -1), 0);
  EXPECT_EQ(s.value("packets_late", -1), 0)
      << "rtpsend send-time error (us): " << r.sent["send_error_us"].dump();
  EXPECT_EQ(s.value("packets_duplicate", -1), 0);
  EXPECT_EQ(s.value("underruns", -1), 0) << r.stats.dump(2);
}

/// `s16_output`: the output was written as 16-bit (--output): the ramped frames are rounded too.
void expect_exact(const Result& r, const Audio& expected, float tolerance = 0.0f,
                  bool s16_output = false) {
  ASSERT_GT(r.capture.frames(), 0u);
  // Mono sources play on both channels: compare against a stereo version.
  Audio exp2 = expected;
  if (expected.channels == 1) {
    exp2.channels = 2;
    exp2.samples.clear();
    for (float v : expected.samples) exp2.samples.insert(exp2.samples.end(), {v, v});
  }
  // rtpnode fades every source in over its first 5 ms (node/mixer.hpp: frame k of the stream
  // gets (k+1)/240 at 48 kHz), exactly as computed here.
  constexpr std::size_t kJoinRamp = 240;
  for (std::size_t k = 0; k + 1 < kJoinRamp && k < exp2.frames(); ++k)
    for (int c = 0; c < exp2.channels; ++c)
      exp2.samples[k * 2 + static_cast<std::size_t>(c)] *=
          static_cast<float>(k + 1) / static_cast<float>(kJoinRamp);
  if (s16_output)
    for (std::size_t k = 0; k + 1 < kJoinRamp && k < exp2.frames(); ++k)
      for (int c = 0; c < exp2.channels; ++c) {
        float& v = exp2.samples[k * 2 + static_cast<std::size_t>(c)];
        v = std::nearbyint(v * 32768.0f) / 32768.0f;
      }
  const ExactMatch m = match_exact(r.capture, exp2, kPeriod, tolerance);
  const std::string summary =
      "matched " + std::to_string(m.matched_frames) + ", mismatched " +
      std::to_string(m.mismatched_frames) + ", silent gaps " + std::to_string(m.silent_gap_frames) +
      ", realignments " + std::to_string(m.realignments) + ", expected " +
      std::to_string(exp2.frames()) + ", capture " + std::to_string(r.capture.frames()) + "\n";
  EXPECT_EQ(m.mismatched_frames, 0u) << summary << r.node_log << r.stats.dump(2);
  // Every frame is accounted for, except whole periods lost to JACK xruns and the last packet's
  // tail, which the resampler mixes with what follows.
  const std::size_t lost_to_xruns =
      static_cast<std::size_t>(m.realignments) * kPeriod + m.silent_gap_frames;
  EXPECT_GE(m.matched_frames + lost_to_xruns + 256, exp2.frames()) << summary << r.stats.dump(2);
  EXPECT_LE(lost_to_xruns, 3u * kPeriod) << "JACK xruns: " << r.stats["node"].dump();
  ::testing::Test::RecordProperty("matched_frames", static_cast<int>(m.matched_frames));
  ::testing::Test::RecordProperty("realignments", m.realignments);
}

}  // namespace

TEST(System, L16StereoPlaysSampleForSample) {
  Scenario s;
  s.input = stereo_recording();
  s.node_args = {"--payload", "97=L16/48000/2"};
  s.send_args = {"--codec", "l16", "--pt", "97"};
  const Result r = run(s);
  expect_exact(r, s.input);
  expect_clean_stats(r);
  EXPECT_EQ(r.stats["node"]["packets_malformed"], 0);
}

// Issue #13: the file backend renders what the device would play, without a device: an L16
// stream comes out of --output bit-exact (fixed latency, no drift compensation, equal rates).
TEST(FileOutput, L16StereoRendersBitExactToWavWithoutADevice) {
  Scenario s;
  s.input = stereo_recording();
  s.file_output = true;
  s.node_args = {"--payload", "97=L16/48000/2"};
  s.send_args = {"--codec", "l16", "--pt", "97"};
  const Result r = run(s);
  EXPECT_EQ(r.capture.rate, 48000);
  EXPECT_NE(r.node_log.find("playing on file "), std::string::npos) << r.node_log;
  expect_exact(r, s.input, 0.0f, true);
  expect_clean_stats(r);
  EXPECT_EQ(r.stats["node"]["xruns"], 0);
}

// Issue #17: L24 (RFC 3190) from a sender nobody here wrote: GStreamer's rtpL24pay with 1 ms
// packets (AES67's packet time, 1000 packets a second) renders bit-exact: GStreamer widens the
// 16-bit input to 24 bits exactly, and --output writes it back as 16 bits.
TEST(Interop, GstreamerL24AtOneMillisecondPacketsRendersBitExact) {
  if (std::system("gst-inspect-1.0 rtpL24pay > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "GStreamer's rtpL24pay is not installed";
  const Audio input = stereo_recording();
  // GStreamer streams `input` as L24 to rtpnode mapping PT 97 as `mapping`, rendered to a file.
  auto play = [&](const std::string& mapping, const std::string& name) {
    const std::string dir = test_dir() + "/" + name;
    std::filesystem::create_directories(dir);
    write_wav16(dir + "/input.wav", input);
    const int port = free_udp_port();
    const double seconds = static_cast<double>(input.frames()) / input.rate;
    const int node_secs = static_cast<int>(std::ceil(seconds)) + 3;
    Process node({RTPNODE_BIN, "--listen", "127.0.0.1:" + std::to_string(port), "--payload",
                  "97=" + mapping, "--output", dir + "/capture.wav", "--period",
                  std::to_string(kPeriod), "--duration", std::to_string(node_secs) + "s",
                  "--latency", kTestLatency, "--drift", "off", "--stats-json", dir + "/stats.json"},
                 dir + "/rtpnode.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Process gst({"gst-launch-1.0",
                 "-q",
                 "filesrc",
                 "location=" + dir + "/input.wav",
                 "!",
                 "wavparse",
                 "!",
                 "audioconvert",
                 "!",
                 "audio/x-raw,format=S24BE,rate=48000,channels=2",
                 "!",
                 "rtpL24pay",
                 "pt=97",
                 "min-ptime=1000000",
                 "max-ptime=1000000",
                 "!",
                 "udpsink",
                 "host=127.0.0.1",
                 "port=" + std::to_string(port),
                 "sync=true"},
                dir + "/gst.log");
    EXPECT_EQ(gst.wait(std::chrono::seconds(node_secs + 5)), std::optional<int>(0)) << gst.log();
    EXPECT_EQ(node.wait(std::chrono::seconds(node_secs + 5)), std::optional<int>(0)) << node.log();
    Result r;
    r.node_log = node.log();
    r.capture = read_wav(dir + "/capture.wav");
    std::ifstream(dir + "/stats.json") >> r.stats;
    return r;
  };
  const double packets = static_cast<double>(input.frames()) / 48.0;  // one per millisecond
  const Result r = play("L24/48000/2", "l24");
  const json& src = only_source(r);
  EXPECT_EQ(src.value("payload", ""), "l24/48000/2") << src.dump(2);
  EXPECT_NEAR(src.value("packets_received", 0), packets, 2) << src.dump(2);
  EXPECT_EQ(src.value("packets_lost", -1), 0);
  EXPECT_EQ(src.value("packets_length_mismatch", -1), 0);
  EXPECT_EQ(r.stats["node"]["packets_malformed"], 0);
  expect_exact(r, input, 0.0f, true);
  // The same stream mapped as L16, the mistake the issue describes: the stderr says so once,
  // with the ratio, and the stats count it.
  const Result wrong = play("L16/48000/2", "l24_as_l16");
  const json& w = only_source(wrong);
  EXPECT_GE(w.value("packets_length_mismatch", 0), packets - 10) << w.dump(2);
  EXPECT_NE(wrong.node_log.find("its packets hold 1.5x the audio their RTP timestamps advance"),
            std::string::npos)
      << wrong.node_log;
  EXPECT_NE(wrong.node_log.find("length_mismatch="), std::string::npos) << wrong.node_log;
}

Audio channel_of(const Audio& a, int c);  // below, with the SIPp tests

// Issue #14: AMR-NB from a sender nobody here wrote: GStreamer's rtpamrpay (RFC 4867
// octet-aligned, announced as octet-align=1) streams an .amr file of a real recording (frames
// made by opencore's encoder); rtpnode, told "96=AMR/8000/octet-align", plays what ffmpeg's AMR
// decoder (written independently of opencore) makes of the same file.
TEST(Interop, GstreamerAmrOctetAlignedPlaysAsFfmpegDecodesIt) {
  if (std::system("gst-inspect-1.0 rtpamrpay > /dev/null 2>&1") != 0 ||
      std::system("gst-inspect-1.0 amrparse > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "GStreamer's rtpamrpay or amrparse is not installed";
  const std::string dir = test_dir();
  const Audio speech = speech_8k();
  const std::string amr = dir + "/speech.amr";
  {
    std::ofstream f(amr, std::ios::binary);
    f << "#!AMR\n";  // RFC 4867 §5.1
    void* enc = Encoder_Interface_init(0);
    std::vector<std::int16_t> pcm(160);
    for (std::size_t at = 0; at < speech.frames(); at += 160) {
      for (std::size_t i = 0; i < 160; ++i)
        pcm[i] = at + i < speech.frames()
                     ? static_cast<std::int16_t>(std::lround(speech.samples[at + i] * 32767.0f))
                     : 0;
      unsigned char frame[64];
      const int n = Encoder_Interface_Encode(enc, MR122, pcm.data(), frame, 0);
      f.write(reinterpret_cast<const char*>(frame), n);
    }
    Encoder_Interface_exit(enc);
  }
  ASSERT_EQ(run_command("ffmpeg -v error -y -i " + amr + " -ar 8000 " + dir + "/ffmpeg.wav").first,
            0);
  const Audio expected = resample(read_wav(dir + "/ffmpeg.wav"), 48000, 4);
  const int port = free_udp_port();
  const int node_secs = static_cast<int>(std::ceil(speech.frames() / 8000.0)) + 3;
  Process node({RTPNODE_BIN, "--listen", "127.0.0.1:" + std::to_string(port), "--payload",
                "96=AMR/8000/octet-align", "--output", dir + "/capture.wav", "--period",
                std::to_string(kPeriod), "--duration", std::to_string(node_secs) + "s", "--latency",
                kTestLatency, "--drift", "off", "--stats-json", dir + "/stats.json"},
               dir + "/rtpnode.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Process gst(
      {"gst-launch-1.0", "-q", "filesrc", "location=" + amr, "!", "amrparse", "!", "rtpamrpay",
       "pt=96", "!", "udpsink", "host=127.0.0.1", "port=" + std::to_string(port), "sync=true"},
      dir + "/gst.log");
  EXPECT_EQ(gst.wait(std::chrono::seconds(node_secs + 5)), std::optional<int>(0)) << gst.log();
  EXPECT_EQ(node.wait(std::chrono::seconds(node_secs + 5)), std::optional<int>(0)) << node.log();
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  ASSERT_EQ(stats["sources"].size(), 1u) << stats.dump(2) << node.log();
  const json& src = stats["sources"][0];
  EXPECT_EQ(src.value("payload", ""), "amr/8000/1/octet-align") << src.dump(2);
  EXPECT_EQ(src.value("packets_lost", -1), 0);
  EXPECT_EQ(src.value("packets_malformed", -1), 0);
  EXPECT_EQ(src.value("packets_length_mismatch", -1), 0);
  const Audio capture = read_wav(dir + "/capture.wav");
  const double c = min_window_correlation(channel_of(capture, 0), expected, 4800, 24000, 96);
  EXPECT_GE(c, 0.99);
  RecordProperty("ffmpeg_min_window_correlation", std::to_string(c));
}

/// A 48 kHz mono source as rtpnode plays it from its start: on both channels, with its 5 ms join
/// fade (node/mixer.hpp: frame k gets (k+1)/240).
Audio as_played_mono(const Audio& mono48) {
  Audio out;
  out.rate = 48000;
  out.channels = 2;
  for (std::size_t k = 0; k < mono48.frames(); ++k) {
    const float v = mono48.samples[k] * (k + 1 < 240 ? static_cast<float>(k + 1) / 240.0f : 1.0f);
    out.samples.insert(out.samples.end(), {v, v});
  }
  return out;
}

// Issue #14: RFC 2198 redundant audio from a sender nobody here wrote: GStreamer's rtpredenc
// (distance 1: each packet repeats the one before it; distance 2: the one two back) wraps
// rtppcmupay's 20 ms PCMU of a real recording, and an identity element drops 10 % of the RED
// packets on the way. rtpnode, told "98=pcmu/8000/1/red=0" (a=rtpmap:98 red/8000, a=fmtp:98 0/0),
// rebuilds every lost packet whose successor arrived from that successor's redundant block, and
// conceals only the others: the output differs from the lossless decode of GStreamer's own mulawenc
// bytes only around those.
TEST(Interop, GstreamerRedundantPcmuRebuildsLostPackets) {
  if (std::system("gst-inspect-1.0 rtpredenc > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "GStreamer's rtpredenc is not installed";
  const std::string dir = test_dir();
  Audio speech = speech_8k();
  const std::size_t sent_frames = speech.frames();
  for (int i = 0; i < 2; ++i)  // ~220 packets: enough for the loss to be measured
    speech.samples.insert(speech.samples.end(), speech.samples.begin(),
                          speech.samples.begin() + static_cast<std::ptrdiff_t>(sent_frames));
  write_wav16(dir + "/speech.wav", speech);
  // The expected audio: GStreamer's mulawenc bytes of the file, decoded without loss.
  ASSERT_EQ(
      run_command("gst-launch-1.0 -q filesrc location=" + dir +
                  "/speech.wav ! wavparse ! mulawenc ! filesink location=" + dir + "/speech.ulaw")
          .first,
      0);
  std::ifstream ulaw_in(dir + "/speech.ulaw", std::ios::binary);
  const std::vector<std::uint8_t> ulaw((std::istreambuf_iterator<char>(ulaw_in)),
                                       std::istreambuf_iterator<char>());
  ASSERT_EQ(ulaw.size(), speech.frames());
  Audio lossless;
  lossless.rate = 8000;
  lossless.channels = 1;
  {
    auto dec = make_decoder(PayloadFormat{Codec::pcmu, 8000, 8000, 1});
    std::vector<float> frame(160);
    for (std::size_t at = 0; at + 160 <= ulaw.size(); at += 160) {
      ASSERT_EQ(dec->decode(std::span(ulaw).subspan(at, 160), frame), 160);
      lossless.samples.insert(lossless.samples.end(), frame.begin(), frame.end());
    }
  }
  const Audio expected = as_played_mono(resample(lossless, 48000, 4));

  // Distance 1, and distance 2 (rtpredenc then repeats only the packet two back: a loss is
  // rebuilt from the packet after next, which the 300 ms delay holds at its deadline).
  for (const int distance : {1, 2}) {
    SCOPED_TRACE("distance " + std::to_string(distance));
    const std::string run_dir = dir + "/distance" + std::to_string(distance);
    std::filesystem::create_directories(run_dir);
    const int port = free_udp_port();
    const int node_secs = static_cast<int>(std::ceil(speech.frames() / 8000.0)) + 3;
    Process node(
        {RTPNODE_BIN, "--listen", "127.0.0.1:" + std::to_string(port), "--payload",
         "98=pcmu/8000/1/red=0", "--output", run_dir + "/capture.wav", "--output-format", "f32",
         "--period", std::to_string(kPeriod), "--duration", std::to_string(node_secs) + "s",
         "--latency", kTestLatency, "--drift", "off", "--stats-json", run_dir + "/stats.json"},
        run_dir + "/rtpnode.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Process gst({"gst-launch-1.0",
                 "-q",
                 "filesrc",
                 "location=" + dir + "/speech.wav",
                 "!",
                 "wavparse",
                 "!",
                 "mulawenc",
                 "!",
                 "rtppcmupay",
                 "pt=0",
                 "min-ptime=20000000",
                 "max-ptime=20000000",
                 "!",
                 "rtpredenc",
                 "pt=98",
                 "distance=" + std::to_string(distance),
                 "!",
                 "identity",
                 "drop-probability=0.1",
                 "!",
                 "udpsink",
                 "host=127.0.0.1",
                 "port=" + std::to_string(port),
                 "sync=true"},
                run_dir + "/gst.log");
    EXPECT_EQ(gst.wait(std::chrono::seconds(node_secs + 5)), std::optional<int>(0)) << gst.log();
    EXPECT_EQ(node.wait(std::chrono::seconds(node_secs + 5)), std::optional<int>(0)) << node.log();
    json stats;
    std::ifstream(run_dir + "/stats.json") >> stats;
    ASSERT_EQ(stats["sources"].size(), 1u) << stats.dump(2) << node.log();
    const json& src = stats["sources"][0];
    EXPECT_EQ(src.value("payload", ""), "pcmu/8000/1/red=0") << src.dump(2);
    const int lost = src.value("packets_lost", -1), recovered = src.value("fec_recovered", -1);
    const int concealed = src.value("frames_concealed", -1);
    std::printf(
        "RED distance %d from GStreamer: %d packets received, %d lost, %d rebuilt, %d frames "
        "concealed\n",
        distance, src.value("packets_received", -1), lost, recovered, concealed);
    EXPECT_EQ(src.value("packets_malformed", -1), 0);
    EXPECT_EQ(src.value("packets_late", -1), 0);
    EXPECT_GE(lost, 8) << "identity dropped ~10 % of ~220 packets";
    // A lost packet is rebuilt unless the one carrying it (`distance` later) was lost too
    // (~10 % of losses).
    EXPECT_LE(recovered, lost);
    EXPECT_GE(recovered, lost * 7 / 10) << src.dump(2);
    // Concealed: what the redundancy could not rebuild, plus at most the 100 ms the concealment
    // extrapolates after the stream's last packet (node/concealer.hpp kMaxConcealMs).
    EXPECT_GE(concealed, (lost - recovered) * 160);
    EXPECT_LE(concealed, (lost - recovered) * 160 + 800)
        << "only what the redundancy could not rebuild";
    // Sample for sample the lossless decode, except around the packets concealed (each costs at
    // most its own 960 frames at 48 kHz and the PLC's blend into the next packet).
    const Audio capture = read_wav(run_dir + "/capture.wav");
    const ExactMatch m = match_exact(capture, expected, kPeriod, 1e-6f);
    std::printf("exact frames %zu, mismatched %zu (concealed packets %d)\n", m.matched_frames,
                m.mismatched_frames, lost - recovered);
    EXPECT_LE(m.mismatched_frames, static_cast<std::size_t>(lost - recovered) * 960 * 2);
    EXPECT_GE(m.matched_frames, expected.frames() * 8 / 10);
  }
}

// Issue #14: rtpsend --red (RFC 2198, distance 1) with 20 % seeded loss, rendered to a file:
// every lost packet whose successor arrived is rebuilt from it (exactly the count rtpsend's
// trace gives), and the output is sample for sample the lossless decode except around the
// packets lost with their successor.
TEST(FileOutput, RedundantPcmuFromRtpsendRebuildsEveryLossTheNextPacketCovers) {
  const std::string trace = test_dir() + "/trace.txt", report = test_dir() + "/report.json";
  Scenario s;
  s.input = speech_8k();
  const std::size_t once = s.input.samples.size();
  for (int i = 0; i < 3; ++i)  // ~290 packets
    s.input.samples.insert(s.input.samples.end(), s.input.samples.begin(),
                           s.input.samples.begin() + static_cast<std::ptrdiff_t>(once));
  s.file_output = true;
  s.node_args = {"--payload", "98=pcmu/8000/1/red=0", "--output-format", "f32", "--report", report};
  s.send_args = {"--codec", "pcmu",   "--red", "98",          "--loss",
                 "20%",     "--seed", "11",    "--trace-out", trace};
  const Result r = run(s);
  // rtpsend's trace: one line per packet, in sequence order.
  std::vector<bool> lost;
  {
    std::ifstream in(trace);
    for (std::string line; std::getline(in, line);)
      lost.push_back(line.find(" lost") != std::string::npos);
  }
  int losses = 0, rebuildable = 0;
  for (std::size_t i = 0; i < lost.size(); ++i) {
    if (!lost[i]) continue;
    ++losses;
    if (i + 1 < lost.size() && !lost[i + 1]) ++rebuildable;
  }
  // Losses at the very end are not known to the receiver (nothing after them arrived).
  int trailing = 0;
  for (std::size_t i = lost.size(); i > 0 && lost[i - 1]; --i) ++trailing;
  const json& src = only_source(r);
  std::printf(
      "rtpsend --red: %zu packets, %d lost (%d rebuildable); rtpnode: %d lost, %d rebuilt\n",
      lost.size(), losses, rebuildable, src.value("packets_lost", -1),
      src.value("fec_recovered", -1));
  ASSERT_GE(losses, 30) << "20 % of ~290 packets";
  ASSERT_LT(rebuildable, losses - trailing) << "the seed gives losses in a row too";
  EXPECT_EQ(src.value("packets_lost", -1), losses - trailing);
  EXPECT_EQ(src.value("fec_recovered", -1), rebuildable);
  EXPECT_EQ(src.value("packets_malformed", -1), 0);
  const int concealed_packets = losses - trailing - rebuildable;
  const int concealed = src.value("frames_concealed", -1);
  EXPECT_GE(concealed, concealed_packets * 160);
  EXPECT_LE(concealed, concealed_packets * 160 + 800);  // + the 100 ms after the last packet
  // The quality report: the network's loss, and the residual loss the E-model rates: G.711 with
  // PLC (Bpl 25.1), G.107 (7-29) Ie,eff = 95 Ppl / (Ppl + 25.1). Measured: 18.8 % lost on the
  // wire, 3.8 % residual: Ie,eff 12.4 and, with the 300 ms playout delay's Idd, MOS 3.24 (the
  // wire's loss would have given Ie,eff 40.7 and MOS ~1.8).
  json rep;
  std::ifstream(report) >> rep;
  ASSERT_EQ(rep["streams"].size(), 1u) << rep.dump(2);
  const json& st = rep["streams"][0];
  const double expected_packets = src.value("packets_received", 0) + (losses - trailing);
  EXPECT_NEAR(st["loss_percent"].get<double>(), 100.0 * (losses - trailing) / expected_packets,
              1e-9);
  EXPECT_EQ(st["fec_recovered"].get<int>(), rebuildable);
  EXPECT_NEAR(st["residual_loss_percent"].get<double>(),
              100.0 * concealed_packets / expected_packets, 1e-9);
  const double residual = st["residual_loss_percent"].get<double>();
  EXPECT_NEAR(st["ie_eff"].get<double>(), 95.0 * residual / (residual + 25.1), 1e-9);
  EXPECT_GT(st["mos"].get<double>(), 3.0) << st.dump(2);
  // The audio: the lossless decode, except around the concealed packets.
  const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
  const Audio expected = as_played_mono(resample(reference_decode(s.input, f, 160), 48000, 4));
  const ExactMatch m = match_exact(r.capture, expected, kPeriod, 1e-6f);
  std::printf("exact frames %zu of %zu, mismatched %zu (%d packets concealed)\n", m.matched_frames,
              expected.frames(), m.mismatched_frames, concealed_packets);
  EXPECT_LE(m.mismatched_frames, static_cast<std::size_t>(concealed_packets) * 960 * 2);
  EXPECT_GE(m.matched_frames + static_cast<std::size_t>(concealed_packets) * 960 * 2,
            expected.frames());
}

// Issue #17: L24 at the shortest packet time RFC 3190 streams allow in practice (125 us: six
// frames at 48 kHz, 8000 packets a second) renders bit-exact.
TEST(FileOutput, L24At125MicrosecondPacketsRendersBitExact) {
  Scenario s;
  s.input = stereo_recording();
  s.file_output = true;
  s.node_args = {"--payload", "97=L24/48000/2"};
  s.send_args = {"--codec", "l24", "--pt", "97", "--ptime", "125us"};
  const Result r = run(s);
  EXPECT_EQ(only_source(r).value("packets_received", 0),
            static_cast<int>((s.input.frames() + 5) / 6));
  expect_exact(r, s.input, 0.0f, true);
  expect_clean_stats(r);
}

/// A stream announced by SAP in PipeWire's form (session "Studio A": L16 stereo on PT 127, 5 ms
/// packets), rendered to a file.
Scenario studio_a_by_sap() {
  Scenario s;
  s.input = stereo_recording();
  s.file_output = true;
  s.sdp_by_sap = true;
  s.sdp = [](int port) {
    return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Studio A\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio " +
           std::to_string(port) + " RTP/AVP 127\r\na=rtpmap:127 L16/48000/2\r\na=ptime:5\r\n";
  };
  s.send_args = {"--codec", "l16", "--pt", "127", "--ptime", "5ms"};
  return s;
}

// Issue #17: --sap: the stream a SAP announcement describes (PipeWire's form: L16 stereo on PT
// 127, 5 ms packets) is received without --listen or --payload and renders bit-exact.
TEST(FileOutput, SapAnnouncedStreamRendersBitExact) {
  const Scenario s = studio_a_by_sap();
  const Result r = run(s);
  EXPECT_NE(r.node_log.find("SAP: receiving 0.0.0.0:"), std::string::npos) << r.node_log;
  EXPECT_EQ(only_source(r).value("session", ""), "Studio A");
  EXPECT_EQ(r.stats["node"].value("sap_sessions", 0), 1);
  expect_exact(r, s.input, 0.0f, true);
  expect_clean_stats(r);
}

// Issue #17: PipeWire 0.3's module-rtp-sink, an independent sender: L16, L24 or PCMU on PT 127
// in 1 ms packets, announced by SAP (every 5 s, a deletion at exit). rtpnode with --sap and no
// other input flag finds it, maps it and plays it at its level; the announced deletion closes it.
// The input starts with 10 s of silence: PipeWire's first announcement can come 5-10 s after it
// starts streaming. A relay on the way keeps every datagram PipeWire sent, and the output is
// what was sent: sample for sample at 48 kHz, windows correlating >= 0.99 for 8 kHz PCMU.
struct PipeWireFormat {
  const char* format;
  int rate;
  int channels;
  const char* payload;
};
class PipeWireSap : public ::testing::TestWithParam<PipeWireFormat> {};

/// Sits between a sender and rtpnode on loopback, keeping a copy of every RTP datagram (what
/// the sender really sent): RTP from `rtp_in` goes on to `rtp_out`, SAP from `sap_in` to
/// `sap_out` with the SDP's media port rewritten from rtp_in's to rtp_out's. Forwarding costs
/// a few microseconds of jitter.
struct TappingRelay {
  LoopbackUdp rtp_in, sap_in;
  int rtp_out, sap_out;
  std::vector<std::vector<std::uint8_t>> packets;  ///< read after stop()
  std::atomic<bool> stopping{false};
  std::thread thread;

  TappingRelay(int rtp_to, int sap_to) : rtp_out(rtp_to), sap_out(sap_to) {
    thread = std::thread([this] { run(); });
  }
  ~TappingRelay() { stop(); }
  void stop() {
    stopping = true;
    if (thread.joinable()) thread.join();
  }
  void run() {
    std::vector<std::uint8_t> buf(65536);
    const std::string from = "m=audio " + std::to_string(rtp_in.port) + " ";
    const std::string to = "m=audio " + std::to_string(rtp_out) + " ";
    while (!stopping) {
      pollfd fds[2] = {{rtp_in.fd, POLLIN, 0}, {sap_in.fd, POLLIN, 0}};
      if (poll(fds, 2, 50) <= 0) continue;
      if ((fds[0].revents & POLLIN) != 0) {
        const ssize_t n = recv(rtp_in.fd, buf.data(), buf.size(), 0);
        if (n > 0) {
          packets.emplace_back(buf.begin(), buf.begin() + n);
          send_loopback(rtp_in.fd, rtp_out, packets.back());
        }
      }
      if ((fds[1].revents & POLLIN) != 0) {
        const ssize_t n = recv(sap_in.fd, buf.data(), buf.size(), 0);
        if (n > 0) {
          std::string sap(buf.begin(), buf.begin() + n);
          if (const auto at = sap.find(from); at != std::string::npos)
            sap.replace(at, from.size(), to);
          send_loopback(sap_in.fd, sap_out,
                        {reinterpret_cast<const std::uint8_t*>(sap.data()), sap.size()});
        }
      }
    }
  }
  /// The sent audio laid out by RTP timestamp (frame 0 = the first packet's timestamp),
  /// decoded as `f`.
  Audio sent_audio(const PayloadFormat& f) const {
    Audio a;
    a.rate = static_cast<int>(f.audio_rate);
    a.channels = static_cast<int>(f.channels);
    auto dec = make_decoder(f);
    std::vector<float> out(static_cast<std::size_t>(f.audio_rate * f.channels));
    bool first = true;
    rtp_ts_t ts0 = 0;
    for (const auto& p : packets) {
      RtpHeaderView h;
      if (rtp_parse(p, h) != RtpParseStatus::ok) continue;
      if (first) ts0 = h.timestamp;
      first = false;
      const int frames = dec->decode(h.payload, out);
      const auto at = static_cast<std::size_t>(static_cast<rtp_ts_t>(h.timestamp - ts0)) *
                      static_cast<std::size_t>(a.channels);
      if (frames <= 0 || at > (std::size_t{1} << 28)) continue;
      const auto n = static_cast<std::size_t>(frames * a.channels);
      if (a.samples.size() < at + n) a.samples.resize(at + n, 0.0f);
      std::copy_n(out.begin(), n, a.samples.begin() + static_cast<std::ptrdiff_t>(at));
    }
    return a;
  }
};

TEST_P(PipeWireSap, AnnouncedStreamPlaysWithNoFlagsBeyondTheAnnouncementAddress) {
  if (std::system("command -v pipewire pw-cat > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "PipeWire not installed (tools/setup.sh installs pipewire pipewire-bin)";
  const PipeWireFormat f = GetParam();
  const std::string dir = test_dir();
  const Audio speech = f.channels == 2 ? stereo_recording() : speech_8k();
  Audio input = speech;
  input.samples.assign(static_cast<std::size_t>(10 * speech.rate * speech.channels), 0.0f);
  input.samples.insert(input.samples.end(), speech.samples.begin(), speech.samples.end());
  write_wav16(dir + "/input.wav", input);
  const int seconds = static_cast<int>(input.frames() / static_cast<std::size_t>(input.rate)) + 4;
  // What PipeWire sent is the reference. Its stream is not the input file played straight: the
  // payload laid out by RTP timestamp steps against the file by multiples of 32 frames a few
  // times a second (up to 480 frames over 8 s, measured on 50 ms windows), and its RTP clock runs
  // 300..3800 ppm slow against arrival time on this loaded machine (the dummy driver's timer
  // falls behind) -- which is what rtpnode's drift estimate reads.
  const PayloadFormat sent_format{std::string(f.format) == "ULAW"    ? Codec::pcmu
                                  : std::string(f.format) == "S24BE" ? Codec::l24
                                                                     : Codec::l16,
                                  static_cast<std::uint32_t>(f.rate),
                                  static_cast<std::uint32_t>(f.rate),
                                  static_cast<std::uint16_t>(f.channels)};
  json stats;
  Audio out, sent;
  std::string node_log;
  for (int attempt = 1;; ++attempt) {
    const int rtp_port = free_udp_port();
    const int sap_port = free_udp_port();
    TappingRelay relay(rtp_port, sap_port);
    // Playout at speed 1 (--drift off, a fixed delay), so that the output can be compared with
    // what PipeWire sent sample for sample: its RTP clock runs up to 0.4 % slow here, which
    // drains 200 ms of playout delay by at most 50 ms over the run.
    Process node({RTPNODE_BIN, "--sap", "127.0.0.1:" + std::to_string(sap_port), "--latency",
                  "200ms", "--drift", "off", "--output", dir + "/out.wav", "--stats-json",
                  dir + "/stats.json", "--stats-interval", "1s", "--event-log",
                  dir + "/events.jsonl", "--duration", std::to_string(seconds) + "s"},
                 dir + "/rtpnode.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Process sender(
        {"bash", RTPNODE_SOURCE_DIR "/tests/system/pipewire_rtp_sink.sh", dir, f.format,
         std::to_string(f.rate), std::to_string(f.channels), std::to_string(relay.rtp_in.port),
         std::to_string(relay.sap_in.port), dir + "/input.wav"},
        dir + "/sender.log");
    EXPECT_EQ(sender.wait(std::chrono::seconds(seconds + 10)), std::optional<int>(0))
        << sender.log();
    EXPECT_EQ(node.wait(std::chrono::seconds(seconds + 10)), std::optional<int>(0)) << node.log();
    node_log = node.log();
    stats = json();
    std::ifstream(dir + "/stats.json") >> stats;
    out = read_wav(dir + "/out.wav");
    relay.stop();
    sent = relay.sent_audio(sent_format);
    // Once (of ~20 local runs under a parallel ctest) PipeWire's RTP clock ran 1.3 % slow against
    // its own sending: with --drift off the 200 ms delay drained to 85 ms in 9 s and then packets
    // came after their playout time (17 late, jitter under 1.5 ms). That run does not meet the
    // comparison's precondition (speed 1, every packet in time); it runs once more.
    const int late =
        stats["sources"].size() == 1 ? stats["sources"][0].value("packets_late", 0) : 0;
    if (late == 0 || attempt == 2) break;
    std::cerr << "note: PipeWire's RTP clock fell behind its sending until " << late
              << " packets came after the fixed 200 ms delay (VM scheduling); running again\n";
  }
  ASSERT_EQ(stats["sources"].size(), 1u) << stats.dump(2) << node_log;
  const json& src = stats["sources"][0];
  EXPECT_EQ(src.value("session", ""), std::string("PipeWire ") + f.format);
  EXPECT_EQ(src.value("payload", ""), f.payload);
  EXPECT_EQ(src.value("packets_lost", -1), 0);
  ASSERT_GT(sent.frames(), 0u) << "the relay kept no packet";
  const Audio expected = speech.rate == out.rate ? speech : resample(speech, out.rate, 4);
  const std::vector<double> windows =
      window_correlations(out, expected, out.rate / 50, out.rate / 20, out.rate / 100);
  const auto good =
      std::count_if(windows.begin(), windows.end(), [](double c) { return c >= 0.99; });
  auto rms = [](const Audio& a) {
    double e = 0;
    std::size_t n = 0;
    for (std::size_t i = 0; i < a.frames(); ++i) {
      const double x = a.samples[i * static_cast<std::size_t>(a.channels)];
      e += x * x;
      n += std::abs(x) > 1e-3 ? 1 : 0;
    }
    return n > 0 ? std::sqrt(e / static_cast<double>(n)) : 0.0;
  };
  const double level_db = 20 * std::log10(rms(out) / rms(expected));
  std::printf(
      "PipeWire %s: against the input file %zu of %zu 50 ms windows correlate >= 0.99 (PipeWire "
      "does not send the file straight); level %+.2f dB, %d packets, drift %.1f ppm, concealed "
      "%d frames\n",
      f.format, static_cast<std::size_t>(good), windows.size(), level_db,
      src.value("packets_received", 0), src.value("drift_ppm", 0.0),
      src.value("frames_concealed", -1));
  if (sent.rate == out.rate) {
    // Same rate, speed 1: the output is what was sent, sample for sample (24-bit rounded to
    // the 16-bit WAV).
    for (float& v : sent.samples)
      v = std::clamp(std::nearbyint(v * 32768.0f), -32768.0f, 32767.0f) / 32768.0f;
    const ExactMatch m = match_exact(out, sent, 256);
    std::printf("PipeWire %s against what it sent: %zu frames equal, %zu differ, %zu silent\n",
                f.format, m.matched_frames, m.mismatched_frames, m.silent_gap_frames);
    EXPECT_GT(m.matched_frames, static_cast<std::size_t>(sent.rate));
    EXPECT_EQ(m.mismatched_frames, 0u);
    EXPECT_EQ(m.realignments, 0);
    EXPECT_EQ(m.silent_gap_frames, 0u);
  } else {
    // 8 kHz PCMU resampled to the device: every 50 ms window with sound correlates with what was
    // sent.
    sent = resample(sent, out.rate, 4);
    const std::vector<double> sent_windows =
        window_correlations(out, sent, out.rate / 5, out.rate / 20, out.rate / 100);
    ASSERT_GT(sent_windows.size(), 10u);
    const double lowest = *std::min_element(sent_windows.begin(), sent_windows.end());
    std::printf("PipeWire %s against what it sent: lowest of %zu windows %.4f\n", f.format,
                sent_windows.size(), lowest);
    EXPECT_GE(lowest, 0.99);
  }
  EXPECT_NEAR(level_db, 0.0, 1.0);
  EXPECT_NE(node_log.find("session 'PipeWire " + std::string(f.format) + "' from 0.0.0.0 deleted"),
            std::string::npos)
      << node_log;
}

INSTANTIATE_TEST_SUITE_P(Interop, PipeWireSap,
                         ::testing::Values(PipeWireFormat{"S16BE", 48000, 2, "l16/48000/2"},
                                           PipeWireFormat{"S24BE", 48000, 2, "l24/48000/2"},
                                           PipeWireFormat{"ULAW", 8000, 1, "pcmu/8000/1"}),
                         [](const auto& info) { return std::string(info.param.format); });

// Issue #17: two real PipeWire 0.3.65 senders on one host, to one port. Both pick SSRC
// 0x66334873 and the same first sequence number (unseeded rand()); before, the second one's
// packets were all counted as duplicates of the first's and never heard. Now each is a source of
// its own, told apart by its transport address, and both tones are in the output at their level.
TEST(Interop, TwoPipeWireSendersWithTheSameSsrcAreBothHeard) {
  if (std::system("command -v pipewire pw-cat > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "PipeWire not installed (tools/setup.sh installs pipewire pipewire-bin)";
  const std::string dir = test_dir();
  const int rate = 48000, seconds = 4;
  const double freqs[2] = {440.0, 1000.0};
  for (int k = 0; k < 2; ++k) {
    Audio tone;
    tone.rate = rate;
    tone.channels = 2;
    for (int i = 0; i < seconds * rate; ++i) {
      const float v = std::nearbyint(0.25f * 32768.0f *
                                     static_cast<float>(std::sin(2 * M_PI * freqs[k] * i / rate))) /
                      32768.0f;
      tone.samples.insert(tone.samples.end(), {v, v});
    }
    write_wav16(dir + "/tone" + std::to_string(k) + ".wav", tone);
  }
  // A PipeWire sender that never finishes its file (pw-cat stuck; seen once in CI, 2026-12-02)
  // says nothing about rtpnode: that run is made again once, on a quiet machine.
  std::unique_ptr<Process> node;
  for (int attempt = 1;; ++attempt) {
    const int rtp_port = free_udp_port();
    node = std::make_unique<Process>(
        std::vector<std::string>{RTPNODE_BIN, "--listen", "127.0.0.1:" + std::to_string(rtp_port),
                                 "--payload", "127=L16/48000/2", "--latency", "100ms", "--output",
                                 dir + "/out.wav", "--stats-json", dir + "/stats.json",
                                 "--stats-interval", "1s", "--duration",
                                 std::to_string(seconds + 3) + "s"},
        dir + "/rtpnode.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::vector<std::unique_ptr<Process>> senders;
    for (int k = 0; k < 2; ++k) {
      const std::string sub = dir + "/pw" + std::to_string(k);
      std::filesystem::create_directories(sub);
      senders.push_back(std::make_unique<Process>(
          std::vector<std::string>{"bash", RTPNODE_SOURCE_DIR "/tests/system/pipewire_rtp_sink.sh",
                                   sub, "S16BE", "48000", "2", std::to_string(rtp_port),
                                   std::to_string(free_udp_port()),
                                   dir + "/tone" + std::to_string(k) + ".wav"},
          sub + "/sender.log"));
    }
    bool stuck = false;
    for (auto& s : senders) {
      const std::optional<int> rc = s->wait(std::chrono::seconds(seconds + 10));
      stuck = stuck || !rc;
      if (rc || attempt == 2) {
        EXPECT_EQ(rc, std::optional<int>(0)) << s->log();
      }
    }
    if (stuck && attempt < 2) {
      std::cerr << "note: a PipeWire sender did not finish its " << seconds << " s file in "
                << seconds + 10 << " s; running again\n";
      senders.clear();  // kills each sender's script, daemon and pw-cat
      node.reset();
      wait_for_quiet_machine();
      continue;
    }
    break;
  }
  EXPECT_EQ(node->wait(std::chrono::seconds(seconds + 10)), std::optional<int>(0)) << node->log();
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  std::vector<json> sources;
  for (const json& s : stats["sources"]) sources.push_back(s);
  for (const json& s : stats.value("departed", json::array())) sources.push_back(s);
  ASSERT_EQ(sources.size(), 2u) << stats.dump(2) << node->log();
  for (const json& s : sources) {
    EXPECT_EQ(s.value("ssrc", 0u), 0x66334873u) << s.dump(2);
    EXPECT_EQ(s.value("packets_duplicate", -1), 0) << s.dump(2);
    EXPECT_GE(s.value("packets_received", 0), (seconds - 1) * 1000) << s.dump(2);  // 1 ms each
  }
  EXPECT_NE(sources[0].value("remote", ""), sources[1].value("remote", ""));
  EXPECT_GE(stats["node"].value("ssrc_collisions", 0), 1);
  // Each tone at its level in some 100 ms of the output (the senders start apart; a DFT bin on
  // channel 0; short windows, as PipeWire's stream steps by 32 frames a few times a second).
  const Audio out = read_wav(dir + "/out.wav");
  const std::size_t window = static_cast<std::size_t>(rate / 10);
  ASSERT_GT(out.frames(), 20 * window);
  auto amplitude = [&](double f, std::size_t from) {
    double re = 0, im = 0;
    for (std::size_t i = 0; i < window; ++i) {
      const double x = out.samples[(from + i) * 2];
      re += x * std::cos(2 * M_PI * f * static_cast<double>(i) / rate);
      im -= x * std::sin(2 * M_PI * f * static_cast<double>(i) / rate);
    }
    return 2 * std::hypot(re, im) / static_cast<double>(window);
  };
  double best[2] = {0, 0};
  for (std::size_t from = 0; from + window <= out.frames(); from += window / 2)
    for (int k = 0; k < 2; ++k) best[k] = std::max(best[k], amplitude(freqs[k], from));
  std::printf("two PipeWire senders, one SSRC: 440 Hz at %.3f, 1000 Hz at %.3f (sent at 0.25)\n",
              best[0], best[1]);
  EXPECT_NEAR(best[0], 0.25, 0.03);
  EXPECT_NEAR(best[1], 0.25, 0.03);
}

// Issue #17: trx-tx 0.5, an independent sender that bends RFC 7587 (Opus on PT 0, RTP
// timestamps on an 8 kHz clock), capturing through ALSA's jack PCM (wrapped in plug) from
// jack_simple_client's sines (48000/200 = 240 Hz left, 720 Hz right, amplitude 0.2) on a JACK
// dummy server. rtpnode with the documented mapping 0=opus/48000/2/ts=8000 plays both tones, in
// their channels, at their level and pitch, with no packet late.
TEST(Interop, TrxTxThroughAlsaJackPcmPlaysWithTheClockOverride) {
  if (std::system("command -v trx-tx jack_simple_client > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "trx or jackd2's example clients not installed (tools/setup.sh installs them)";
  const std::string dir = test_dir();
  JackServer jack(dir, 256);
  Process tone({"jack_simple_client"}, dir + "/simple_client.log");
  ASSERT_TRUE(jack.wait_for_port("jack_simple_client:output2"));
  std::ofstream(dir + "/.asoundrc") << R"(pcm.trxin {
  type plug
  slave.pcm {
    type jack
    capture_ports { 0 "jack_simple_client:output1" 1 "jack_simple_client:output2" }
    playback_ports { 0 "system:playback_1" 1 "system:playback_2" }
  }
}
)";
  const int port = free_udp_port();
  Process node({RTPNODE_BIN, "--listen", "127.0.0.1:" + std::to_string(port), "--payload",
                "0=opus/48000/2/ts=8000", "--latency", "60ms", "--output", dir + "/out.wav",
                "--stats-json", dir + "/stats.json", "--duration", "6s"},
               dir + "/rtpnode.log");
  Process trx({"env", "HOME=" + dir, "trx-tx", "-d", "trxin", "-h", "127.0.0.1", "-p",
               std::to_string(port)},
              dir + "/trx-tx.log");
  EXPECT_EQ(node.wait(std::chrono::seconds(15)), std::optional<int>(0)) << node.log();
  trx.signal(SIGTERM);
  trx.wait(std::chrono::seconds(5));
  json stats;
  std::ifstream(dir + "/stats.json") >> stats;
  ASSERT_EQ(stats["sources"].size(), 1u) << stats.dump(2) << node.log() << trx.log();
  const json& src = stats["sources"][0];
  EXPECT_EQ(src.value("payload", ""), "opus/48000/2/ts=8000");
  EXPECT_GE(src.value("packets_received", 0), 200);  // 20 ms packets for more than 4 s
  EXPECT_EQ(src.value("packets_late", -1), 0);
  EXPECT_EQ(src.value("packets_lost", -1), 0);
  // Each tone's level in the best 100 ms window of the output's middle (10 Hz bins: 240 and 720 Hz
  // are orthogonal over it), and the other tone's in that same window. Not one whole second: on
  // a loaded machine ALSA's jack PCM drops stretches of trx-tx's capture (a CI run measured the
  // 1 s levels at 0.153 and 0.068 while the tones were at 0.199 and 0.193 in a quiet run).
  const Audio out = read_wav(dir + "/out.wav");
  const std::size_t rate = static_cast<std::size_t>(out.rate), window = rate / 10;
  ASSERT_GE(out.frames(), 5 * rate);
  auto amplitude = [&](int channel, double f, std::size_t from) {
    double re = 0, im = 0;
    for (std::size_t i = 0; i < window; ++i) {
      const double x = out.samples[(from + i) * 2 + static_cast<std::size_t>(channel)];
      re += x * std::cos(2 * M_PI * f * static_cast<double>(i) / static_cast<double>(rate));
      im -= x * std::sin(2 * M_PI * f * static_cast<double>(i) / static_cast<double>(rate));
    }
    return 2 * std::hypot(re, im) / static_cast<double>(window);
  };
  double left = 0, right = 0, left_wrong = 1, right_wrong = 1;
  for (std::size_t from = rate; from + window <= out.frames() - rate; from += window / 2) {
    if (const double l = amplitude(0, 240, from); l > left) {
      left = l;
      left_wrong = amplitude(0, 720, from);
    }
    if (const double r = amplitude(1, 720, from); r > right) {
      right = r;
      right_wrong = amplitude(1, 240, from);
    }
  }
  std::printf("trx-tx: 240 Hz left %.3f (720 Hz %.3f), 720 Hz right %.3f (240 Hz %.3f)\n", left,
              left_wrong, right, right_wrong);
  EXPECT_NEAR(left, 0.2, 0.03);
  EXPECT_NEAR(right, 0.2, 0.03);
  EXPECT_LT(left_wrong, 0.01);
  EXPECT_LT(right_wrong, 0.01);
}

// Issue #17: --sap with no address listens on RFC 2974's group 224.2.127.254, PipeWire's
// 224.0.0.56 and AES67's 239.255.255.255 (port 9875), in a network namespace whose loopback
// carries multicast: one announcement on each group opens three sessions, and the stream the
// first describes renders bit-exact.
TEST(FileOutput, SapOnTheDefaultGroupsIsHeardOnEachOfThem) {
  LoopbackNamespace ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot create a network namespace here (needs root)";
  Scenario s = studio_a_by_sap();
  s.netns = ns.name();
  s.sap_groups = {"224.0.0.56", "224.2.127.254", "239.255.255.255"};
  const Result r = run(s);
  EXPECT_EQ(r.stats["node"].value("sap_sessions", 0), 3) << r.node_log;
  EXPECT_EQ(r.stats["node"].value("sap_invalid", -1), 0);
  EXPECT_EQ(only_source(r).value("session", ""), "Studio A");
  expect_exact(r, s.input, 0.0f, true);
  expect_clean_stats(r);
}

// Issue #17: --sap-filter leaves a session out; a deletion closes its port (a stream sent there
// afterwards makes no source); a second announcer's session is its own.
TEST(System, SapFilterAndDeletionDecideWhatIsReceived) {
  const std::string dir = test_dir();
  const int sap_port = free_udp_port();
  const int studio = free_udp_port();
  const int kitchen = free_udp_port();
  Process node({RTPNODE_BIN, "--sap", "127.0.0.1:" + std::to_string(sap_port), "--sap-filter",
                "Studio*", "--output", dir + "/out.wav", "--stats-json", dir + "/stats.json",
                "--stats-interval", "100ms", "--event-log", dir + "/events.jsonl",
                "--source-timeout", "300ms", "--duration", "8s"},
               dir + "/rtpnode.log");
  auto sdp = [](const std::string& name, int port) {
    return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=" + name +
           "\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " + std::to_string(port) + " RTP/AVP 0\r\n";
  };
  auto stats = [&] {
    std::ifstream in(dir + "/stats.json");
    return json::parse(in, nullptr, false);
  };
  auto send_tone = [&](int port, const char* seconds) {
    Process p({RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--duration", seconds, "--dest",
               "127.0.0.1:" + std::to_string(port)},
              dir + "/rtpsend" + std::to_string(port) + ".log");
    EXPECT_EQ(p.wait(std::chrono::seconds(10)), std::optional<int>(0)) << p.log();
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  send_udp(sap_port, build_sap(false, 1, "127.0.0.1", sdp("Studio A", studio)));
  send_udp(sap_port, build_sap(false, 2, "127.0.0.1", sdp("Kitchen", kitchen)));
  send_udp(sap_port, std::string("\x40garbage"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::thread kitchen_sender([&] { send_tone(kitchen, "1s"); });
  send_tone(studio, "1s");
  kitchen_sender.join();
  json s = stats();
  ASSERT_EQ(s["sources"].size(), 1u) << s.dump(2) << node.log();
  EXPECT_EQ(s["sources"][0].value("session", ""), "Studio A");
  EXPECT_EQ(s["sources"][0].value("port", 0), studio);
  EXPECT_EQ(s["node"].value("sap_sessions", 0), 1);
  EXPECT_EQ(s["node"].value("sap_invalid", 0), 1);
  EXPECT_EQ(s["node"].value("sap_packets", 0), 3);
  // Deleted: its port is closed; a stream to it afterwards makes no source.
  send_udp(sap_port, build_sap(true, 1, "127.0.0.1", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));  // the source times out too
  send_tone(studio, "1s");
  s = stats();
  EXPECT_EQ(s["node"].value("sap_sessions", -1), 0) << s.dump(2);
  EXPECT_EQ(s["node"].value("sources_total", 0), 1) << "nothing new after the deletion";
  EXPECT_EQ(node.wait(std::chrono::seconds(10)), std::optional<int>(0)) << node.log();
  const std::string log = node.log();
  EXPECT_NE(log.find("session 'Kitchen' from 127.0.0.1 left out by --sap-filter Studio*"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("SAP version 2"), std::string::npos) << log;
  std::ifstream ev(dir + "/events.jsonl");
  std::vector<std::string> actions;
  for (std::string line; std::getline(ev, line);) {
    const json e = json::parse(line);
    if (e["event"] == "sap_session") actions.push_back(e["action"].get<std::string>());
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"announced", "deleted"}));
}

// Issue #17: SAP reaches anyone on the network, so an announcement cannot open listens without
// bound: one SDP with 40 m= lines opens 16 of them (24 counted as sap_streams_refused), and a
// session whose description keeps changing reuses its listens: 100 changes later the process
// holds as many sockets as after the first.
TEST(System, SapAnnouncementsOpenBoundedListens) {
  const std::string dir = test_dir();
  const int sap_port = free_udp_port();
  Process node(
      {RTPNODE_BIN, "--sap", "127.0.0.1:" + std::to_string(sap_port), "--output", dir + "/out.wav",
       "--stats-json", dir + "/stats.json", "--stats-interval", "100ms", "--duration", "6s"},
      dir + "/rtpnode.log");
  auto sdp = [](int streams, int first_port) {
    std::string t = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=Many\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n";
    for (int i = 0; i < streams; ++i)
      t += "m=audio " + std::to_string(first_port + 2 * i) + " RTP/AVP 0\r\n";
    return t;
  };
  // Sockets only: the stats writer holds a file open for a moment every 100 ms, and a sample
  // that lands then would count it (seen once under ASan: 45 vs 44).
  auto descriptors = [&] {
    int n = 0;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(node.pid()) + "/fd", ec)) {
      const auto target = std::filesystem::read_symlink(e.path(), ec);
      if (!ec && target.string().rfind("socket:", 0) == 0) ++n;
    }
    return n;
  };
  auto stats = [&] {
    std::ifstream in(dir + "/stats.json");
    return json::parse(in, nullptr, false);
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const int before = descriptors();
  send_udp(sap_port, build_sap(false, 1, "127.0.0.1", sdp(40, 41000)));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const int first = descriptors();
  EXPECT_EQ(first - before, 32) << "16 streams, an RTP and an RTCP socket each";
  EXPECT_EQ(stats()["node"].value("sap_streams_refused", 0), 24);
  for (int i = 0; i < 100; ++i)
    send_udp(sap_port, build_sap(false, 1, "127.0.0.1", sdp(16, i % 2 ? 43000 : 45000)));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_LE(descriptors(), first);
  const json s = stats();
  EXPECT_EQ(s["node"].value("sap_sessions", 0), 1);
  EXPECT_EQ(s["node"].value("sap_streams_refused", 0), 24);
  EXPECT_EQ(node.wait(std::chrono::seconds(10)), std::optional<int>(0)) << node.log();
  const std::string log = node.log();
  EXPECT_NE(log.find("24 of its 40 streams not received"), std::string::npos) << log;
}

// Issue #17: --sdp FILE with the SDP ffmpeg itself writes (-sdp_file) for an L24 stream: no
// --listen, no --payload, and the stream renders bit-exact.
TEST(Interop, FfmpegL24StreamPlaysBitExactFromItsOwnSdpFile) {
  if (std::system("command -v ffmpeg > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "ffmpeg not installed";
  const std::string dir = test_dir();
  const Audio input = stereo_recording();
  write_wav16(dir + "/input.wav", input);
  const int port = free_udp_port() & ~1;
  const std::string url = "rtp://127.0.0.1:" + std::to_string(port);
  auto ffmpeg = [&](const std::vector<std::string>& limit, const std::string& log) {
    std::vector<std::string> argv{"ffmpeg", "-v", "error", "-y", "-re", "-i", dir + "/input.wav"};
    argv.insert(argv.end(), limit.begin(), limit.end());
    argv.insert(argv.end(),
                {"-c:a", "pcm_s24be", "-f", "rtp", "-sdp_file", dir + "/stream.sdp", url});
    return Process(argv, dir + "/" + log);
  };
  // The description first (ffmpeg writes it as it starts; a 50 ms run is enough), then rtpnode
  // reads it, then the stream.
  Process first = ffmpeg({"-t", "0.05"}, "ffmpeg_sdp.log");
  ASSERT_EQ(first.wait(std::chrono::seconds(10)), std::optional<int>(0)) << first.log();
  const double seconds = static_cast<double>(input.frames()) / input.rate;
  const int node_secs = static_cast<int>(std::ceil(seconds)) + 3;
  Process node({RTPNODE_BIN, "--sdp", dir + "/stream.sdp", "--output", dir + "/capture.wav",
                "--period", std::to_string(kPeriod), "--duration", std::to_string(node_secs) + "s",
                "--latency", kTestLatency, "--drift", "off", "--stats-json", dir + "/stats.json"},
               dir + "/rtpnode.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  Process stream = ffmpeg({}, "ffmpeg.log");
  EXPECT_EQ(stream.wait(std::chrono::seconds(node_secs + 5)), std::optional<int>(0))
      << stream.log();
  EXPECT_EQ(node.wait(std::chrono::seconds(node_secs + 5)), std::optional<int>(0)) << node.log();
  Result r;
  r.node_log = node.log();
  r.capture = read_wav(dir + "/capture.wav");
  std::ifstream(dir + "/stats.json") >> r.stats;
  EXPECT_NE(r.node_log.find("--sdp " + dir + "/stream.sdp: 'No Name' L24/48000/2 (PT 97)"),
            std::string::npos)
      << r.node_log;
  const json& src = only_source(r);
  EXPECT_EQ(src.value("payload", ""), "l24/48000/2") << src.dump(2);
  EXPECT_EQ(src.value("packets_lost", -1), 0);
  EXPECT_EQ(src.value("packets_length_mismatch", -1), 0);
  expect_exact(r, input, 0.0f, true);
}

/// Streams `input` with rtpsend (`send_args` after FILE --dest) to 127.0.0.1:`port`, where
/// nobody listens, while tcpdump writes what crosses the loopback to that port and port + 1 into
/// `pcap` (`iface` "any": Linux cooked v2 frames; "lo": Ethernet). Returns rtpsend's summary.
/// --immediate-mode: without it, packets wait in the kernel's TPACKET_V3 block for up to a
/// second, and the block pending at SIGINT is never written (the capture loses its end).
json capture_stream(const std::string& dir, const std::string& pcap, const std::string& iface,
                    int port, const Audio& input, std::vector<std::string> send_args) {
  write_wav16(dir + "/input.wav", input);
  const std::string filter = "udp and (dst port " + std::to_string(port) + " or dst port " +
                             std::to_string(port + 1) + ")";
  Process tcpdump(
      {"tcpdump", "-i", iface, "--immediate-mode", "-Z", "root", "-U", "-n", "-w", pcap, filter},
      dir + "/tcpdump.log");
  for (int i = 0; i < 100 && tcpdump.log().find("listening on") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::vector<std::string> send{RTPSEND_BIN,    dir + "/input.wav",
                                "--dest",       "127.0.0.1:" + std::to_string(port),
                                "--stats-json", dir + "/sent.json"};
  send.insert(send.end(), send_args.begin(), send_args.end());
  Process rtpsend_p(send, dir + "/rtpsend.log");
  EXPECT_EQ(rtpsend_p.wait(std::chrono::seconds(30)), std::optional<int>(0)) << rtpsend_p.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the last datagrams written
  tcpdump.signal(SIGINT);
  EXPECT_EQ(tcpdump.wait(std::chrono::seconds(5)), std::optional<int>(0)) << tcpdump.log();
  json sent;
  std::ifstream(dir + "/sent.json") >> sent;
  return sent;
}

/// rtpnode --pcap FILE --output OUT (`args` added): waits for it to end by itself.
Result replay_capture(const std::string& pcap, const std::string& out,
                      std::vector<std::string> args) {
  std::vector<std::string> node{RTPNODE_BIN,
                                "--pcap",
                                pcap,
                                "--output",
                                out,
                                "--period",
                                std::to_string(kPeriod),
                                "--stats-json",
                                out + ".json",
                                "--stats-interval",
                                "1s"};
  node.insert(node.end(), args.begin(), args.end());
  Process p(node, out + ".log");
  EXPECT_EQ(p.wait(std::chrono::seconds(60)), std::optional<int>(0)) << p.log();
  Result r;
  r.node_log = p.log();
  r.capture = read_wav(out);
  std::ifstream(out + ".json") >> r.stats;
  return r;
}

/// tshark's RTP stream analysis of `pcap` (`-z rtp,streams`, RTP decoded on `port`): per SSRC,
/// packets and lost as tshark counts them.
std::map<std::uint32_t, std::pair<long, long>> tshark_streams(const std::string& pcap, int port) {
  const auto [rc, out] =
      run_command("tshark -r " + pcap + " -q -d udp.port==" + std::to_string(port) +
                  ",rtp -z rtp,streams 2>/dev/null");
  EXPECT_EQ(rc, 0) << out;
  std::map<std::uint32_t, std::pair<long, long>> streams;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::vector<std::string> w{std::istream_iterator<std::string>(f), {}};
    // start end src sport dst dport SSRC payload pkts lost (pct) ...
    if (w.size() < 11 || w[6].rfind("0x", 0) != 0) continue;
    streams[static_cast<std::uint32_t>(std::stoul(w[6], nullptr, 16))] = {std::stol(w[8]),
                                                                          std::stol(w[9])};
  }
  return streams;
}

/// The words of the last stream line of tshark's `-z rtp,streams` analysis of `pcap` (RTP
/// decoded on `port`): start end src sport dst dport SSRC payload pkts lost (pct) min/mean/max
/// delta, min/mean/max jitter, ...
std::vector<std::string> tshark_stream_row(const std::string& pcap, int port) {
  const auto [rc, out] =
      run_command("tshark -r " + pcap + " -q -d udp.port==" + std::to_string(port) +
                  ",rtp -z rtp,streams 2>/dev/null");
  EXPECT_EQ(rc, 0) << out;
  std::vector<std::string> w;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.find("0x") != std::string::npos) {
      std::istringstream f(line);
      w.assign(std::istream_iterator<std::string>(f), {});
    }
  return w;
}

// Issue #14: a capture made by tcpdump (Linux cooked v2, `-i any`) of an L16 stream with jitter,
// reordering and duplicates replays through --pcap into a file bit-exact, counted as tshark
// counts it; the same capture converted to pcapng
// by editcap plays the same, counted the same.
TEST(Capture, TcpdumpCaptureReplaysBitExactAndPcapngRendersTheSame) {
  const std::string dir = test_dir();
  const int port = free_udp_port();
  const Audio input = stereo_recording();
  const std::string pcap = dir + "/stream.pcap";
  const json sent = capture_stream(dir, pcap, "any", port, input,
                                   {"--codec", "l16", "--pt", "97", "--jitter", "uniform:0-20ms",
                                    "--reorder", "3%", "--duplicate", "3%", "--seed", "7"});
  const std::vector<std::string> args{"--listen",  "0.0.0.0:" + std::to_string(port),
                                      "--payload", "97=L16/48000/2",
                                      "--latency", kTestLatency,
                                      "--drift",   "off"};
  const Result r = replay_capture(pcap, dir + "/out.wav", args);
  EXPECT_NE(r.node_log.find("replaying " + pcap), std::string::npos) << r.node_log;
  expect_exact(r, input, 0.0f, true);
  const json& src = only_source(r);
  const auto streams = tshark_streams(pcap, port);
  ASSERT_EQ(streams.size(), 1u) << "tshark found no RTP stream";
  const auto [tshark_packets, tshark_lost] = streams.begin()->second;
  EXPECT_EQ(streams.begin()->first, src.value("ssrc", 0u));
  // tshark counts every packet (duplicates too) and lost = expected - received, as RFC 3550
  // A.3 does: duplicates make it negative.
  EXPECT_EQ(src.value("packets_received", -1) + src.value("packets_duplicate", -1), tshark_packets);
  EXPECT_EQ(src.value("packets_lost", -1), std::max(0L, tshark_lost));
  EXPECT_EQ(src.value("packets_received", -1), sent["packets"].get<int>());
  EXPECT_GT(src.value("packets_duplicate", 0), 0) << "rtpsend duplicated none: a weak test";
  EXPECT_EQ(src.value("packets_late", -1), 0);
  const std::string pcapng = dir + "/stream.pcapng";
  ASSERT_EQ(run_command("editcap -F pcapng " + pcap + " " + pcapng).first, 0);
  const Result r2 = replay_capture(pcapng, dir + "/out2.wav", args);
  expect_exact(r2, input, 0.0f, true);
  for (const char* k :
       {"packets_received", "packets_lost", "packets_duplicate", "packets_reordered"})
    EXPECT_EQ(only_source(r2).value(k, -1), src.value(k, -2)) << k;
}

// Issue #14: the --report figures of a stream equal tshark's RTP stream analysis of the same
// capture, with loss, jitter and duplicates: packets and lost (tshark counts duplicates in),
// the longest inter-arrival gap (Max Delta) and the RFC 3550 jitter's maximum and mean
// (0.1 ms), duplicates included as Wireshark includes them. No --listen: the RTP heuristic finds
// the stream; its first packets, held while it decided, count with their capture times.
TEST(Capture, ReportFiguresEqualTsharksStreamAnalysis) {
  const std::string dir = test_dir();
  const int port = free_udp_port();
  const std::string pcap = dir + "/stream.pcap";
  capture_stream(dir, pcap, "lo", port, speech_8k(),
                 {"--codec", "pcmu", "--jitter", "uniform:0-15ms", "--loss", "4%", "--duplicate",
                  "3%", "--seed", "11", "--loop", "--duration", "6s", "--no-bye"});
  const std::string report = dir + "/report.json";
  const Result r = replay_capture(pcap, dir + "/out.wav", {"--report", report});
  json rep;
  std::ifstream(report) >> rep;
  ASSERT_EQ(rep["calls"].size(), 1u) << rep.dump(2) << r.node_log;
  ASSERT_EQ(rep["calls"][0]["caller"].size(), 1u) << rep.dump(2);
  const json& st = rep["calls"][0]["caller"][0];
  const std::vector<std::string> w = tshark_stream_row(pcap, port);
  // start end src sport dst dport SSRC payload pkts lost (pct) min/mean/max delta, min/mean/max
  // jitter
  ASSERT_GE(w.size(), 17u);
  // tshark counts duplicates among the packets, and lost = expected - all received (so each
  // duplicate hides a loss); the report keeps them apart, as RFC 3550 A.3 does.
  EXPECT_GT(st["duplicates"].get<long>(), 0) << "rtpsend duplicated none: a weak test";
  EXPECT_EQ(st["packets"].get<long>() + st["duplicates"].get<long>(), std::stol(w[8]));
  EXPECT_EQ(st["lost"].get<long>() - st["duplicates"].get<long>(), std::stol(w[9]));
  EXPECT_GT(st["lost"].get<long>(), 0) << "rtpsend lost nothing: a weak test";
  // The jitter is Wireshark's: over every packet in arrival order, duplicates included.
  EXPECT_NEAR(st["max_gap_ms"].get<double>(), std::stod(w[13]), 0.01);
  EXPECT_NEAR(st["jitter_mean_ms"].get<double>(), std::stod(w[15]), 0.1);
  EXPECT_NEAR(st["jitter_max_ms"].get<double>(), std::stod(w[16]), 0.1);
  EXPECT_GT(st["jitter_max_ms"].get<double>(), 1.0) << "no jitter: a weak test";
  // G.711 with 4 % loss: R and MOS as G.107 gives them (a loss that low keeps MOS above 3.5).
  EXPECT_GT(st["mos"].get<double>(), 3.5);
  EXPECT_LT(st["mos"].get<double>(), 4.4);
  EXPECT_EQ(st["impairment_source"], "G.113 App. I: G.711 with PLC");
  RecordProperty("tshark", w[8] + " packets, lost " + w[9] + ", max delta " + w[13] +
                               " ms, jitter mean " + w[15] + " max " + w[16] + " ms");
}

// Issue #14: --capture taps an interface live instead of binding the ports (here the loopback,
// where nobody listens on the port): an L16 stream plays bit-exact, each packet's arrival being
// its kernel capture time. Without CAP_NET_RAW the error names the capability.
TEST(Capture, LiveTapOfTheLoopbackPlaysBitExactAndNamesAMissingCapability) {
  if (geteuid() != 0) GTEST_SKIP() << "capturing needs root (CAP_NET_RAW) here";
  const std::string dir = test_dir();
  const int port = free_udp_port();
  const Audio input = stereo_recording();
  write_wav16(dir + "/input.wav", input);
  const std::string p = std::to_string(port), p1 = std::to_string(port + 1);
  Process node({RTPNODE_BIN,
                "--capture",
                "lo",
                "--capture-filter",
                "udp and (dst port " + p + " or dst port " + p1 + ")",
                "--listen",
                "0.0.0.0:" + p,
                "--payload",
                "97=L16/48000/2",
                "--latency",
                kTestLatency,
                "--drift",
                "off",
                "--output",
                dir + "/capture.wav",
                "--period",
                std::to_string(kPeriod),
                "--duration",
                "6s",
                "--stats-json",
                dir + "/stats.json"},
               dir + "/rtpnode.log");
  for (int i = 0; i < 100 && node.log().find("tapping lo") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Process send({RTPSEND_BIN, dir + "/input.wav", "--dest", "127.0.0.1:" + p, "--codec", "l16",
                "--pt", "97", "--stats-json", dir + "/sent.json"},
               dir + "/rtpsend.log");
  EXPECT_EQ(send.wait(std::chrono::seconds(20)), std::optional<int>(0)) << send.log();
  EXPECT_EQ(node.wait(std::chrono::seconds(20)), std::optional<int>(0)) << node.log();
  Result r;
  r.node_log = node.log();
  r.capture = read_wav(dir + "/capture.wav");
  std::ifstream(dir + "/stats.json") >> r.stats;
  std::ifstream(dir + "/sent.json") >> r.sent;
  EXPECT_NE(r.node_log.find("tapping lo"), std::string::npos) << r.node_log;
  expect_exact(r, input, 0.0f, true);
  expect_clean_stats(r);

  const auto [rc, out] =
      run_command("setpriv --reuid=65534 --regid=65534 --clear-groups " + std::string(RTPNODE_BIN) +
                  " --capture lo --output " + dir + "/x.wav --duration 1s 2>&1");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("--capture lo: not permitted: capturing needs CAP_NET_RAW"), std::string::npos)
      << out;
}

/// SIPp's UAS answering with PCMU on [media_port] and, once the ACK is in, playing `pcap` (an
/// RTP capture) to the caller's media address: the callee's voice.
std::string sipp_uas_scenario(const std::string& pcap) {
  return R"(<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="UAS answering with media">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=callee 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv request="ACK" crlf="true"/>
  <nop><action><exec play_pcap_audio=")" +
         pcap + R"("/></action></nop>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
</scenario>
)";
}

/// One channel of `a` as mono audio.
Audio channel_of(const Audio& a, int c) {
  Audio m;
  m.rate = a.rate;
  m.channels = 1;
  for (std::size_t i = 0; i < a.frames(); ++i)
    m.samples.push_back(a.samples[i * static_cast<std::size_t>(a.channels) + c]);
  return m;
}

/// The audio of the G.711 RTP in `pcap` as tshark extracts it and ffmpeg decodes it
/// (`format` alaw or mulaw), at 48 kHz: what rtpnode should play, from tools independent of it.
Audio independent_g711_decode(const std::string& dir, const std::string& pcap,
                              const std::string& format) {
  const std::string raw = dir + "/" + format + ".raw", wav = dir + "/" + format + ".wav";
  const auto [rc, hex] =
      run_command("tshark -r " + pcap + " -o rtp.heuristic_rtp:TRUE -Y 'rtp.p_type == " +
                  (format == "alaw" ? "8" : "0") + "' -T fields -e rtp.payload 2>/dev/null");
  EXPECT_EQ(rc, 0);
  std::ofstream out(raw, std::ios::binary);
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    if (!std::isxdigit(static_cast<unsigned char>(hex[i]))) {
      --i;
      continue;
    }
    out.put(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  out.close();
  EXPECT_EQ(run_command("ffmpeg -v error -y -f " + format + " -ar 8000 -ac 1 -i " + raw + " " + wav)
                .first,
            0);
  return resample(read_wav(wav), 48000, 4);
}

/// A call SIPp places on the loopback, captured by tcpdump into `call_pcap`: SIPp's own
/// uac_pcap scenario as the caller (PCMA from its g711a.pcap and an RFC 2833 digit), our UAS
/// scenario as the callee (answers PCMU and plays `callee_pcap`, an rtpsend capture of a real
/// recording). `transport`: SIPp's -t, "u1" (SIP over UDP) or "t1" (over one TCP connection).
struct SippCall {
  std::string callee_pcap, call_pcap;
  int uas_port = 0, uac_port = 0, uas_media = 0, uac_media = 0;
};
SippCall sipp_call(const std::string& dir, const std::string& transport) {
  SippCall c;
  // The callee's voice: PCMU of a real recording, captured as SIPp's play_pcap_audio reads it.
  c.callee_pcap = dir + "/callee.pcap";
  const int scratch = free_udp_port();
  capture_stream(dir, c.callee_pcap, "lo", scratch, speech_8k(), {"--codec", "pcmu", "--no-bye"});
  std::ofstream(dir + "/uas.xml") << sipp_uas_scenario(c.callee_pcap);
  std::filesystem::create_directories(dir + "/uac");
  std::filesystem::create_symlink("/usr/share/sip-tester", dir + "/uac/pcap");  // uac_pcap's path

  c.uas_port = free_udp_port();
  c.uac_port = free_udp_port();
  c.uas_media = free_udp_port() & ~1;
  c.uac_media = (free_udp_port() & ~1) + 2;
  c.call_pcap = dir + "/call.pcap";
  // Only the call's ports: other processes' datagrams on the loopback are not this call's.
  std::string ports;
  for (int p : {c.uas_port, c.uac_port, c.uas_media, c.uas_media + 1, c.uac_media, c.uac_media + 1})
    ports += (ports.empty() ? "port " : " or port ") + std::to_string(p);
  Process tcpdump({"tcpdump", "-i", "lo", "--immediate-mode", "-Z", "root", "-U", "-n", "-w",
                   c.call_pcap, "(udp or tcp) and (" + ports + ")"},
                  dir + "/tcpdump.log");
  for (int i = 0; i < 100 && tcpdump.log().find("listening on") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Process uas({"sipp", "-sf", dir + "/uas.xml", "-t", transport, "-i", "127.0.0.1", "-p",
               std::to_string(c.uas_port), "-mp", std::to_string(c.uas_media), "-m", "1",
               "-nostdin", "-timeout", "40s"},
              dir + "/uas.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir + "/uac");
  Process uac({"sipp", "-sn", "uac_pcap", "127.0.0.1:" + std::to_string(c.uas_port), "-t",
               transport, "-i", "127.0.0.1", "-p", std::to_string(c.uac_port), "-mp",
               std::to_string(c.uac_media), "-m", "1", "-nostdin", "-timeout", "40s"},
              dir + "/uac.log");
  std::filesystem::current_path(cwd);
  EXPECT_EQ(uac.wait(std::chrono::seconds(45)), std::optional<int>(0)) << uac.log();
  EXPECT_EQ(uas.wait(std::chrono::seconds(5)), std::optional<int>(0)) << uas.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  tcpdump.signal(SIGINT);
  EXPECT_EQ(tcpdump.wait(std::chrono::seconds(5)), std::optional<int>(0)) << tcpdump.log();
  return c;
}

// Issue #14, held to independent tools: SIPp places a call on the loopback (UAC: SIPp's own
// uac_pcap scenario, PCMA from its g711a.pcap and an RFC 2833 digit; UAS: answers PCMU and plays
// an rtpsend capture of a real recording), tcpdump records it, and `rtpnode --pcap` without
// --listen finds the call by its SIP/SDP and plays the caller on the left, the callee on the
// right. With the SIP filtered out, the RTP heuristic finds the same two streams as one call.
TEST(Capture, SippCallIsFoundBySipAndPlayedCallerLeftCalleeRight) {
  const std::string dir = test_dir();
  const SippCall call = sipp_call(dir, "u1");
  const std::string& callee_pcap = call.callee_pcap;
  const std::string& call_pcap = call.call_pcap;
  const int uas_port = call.uas_port, uac_port = call.uac_port;
  const int uas_media = call.uas_media, uac_media = call.uac_media;

  const Audio caller = independent_g711_decode(dir, "/usr/share/sip-tester/g711a.pcap", "alaw");
  const Audio callee = independent_g711_decode(dir, callee_pcap, "mulaw");
  const std::vector<std::string> args{"--latency", "200ms"};
  std::filesystem::create_directories(dir + "/calls");
  std::vector<std::string> record_args = args;
  record_args.insert(record_args.end(),
                     {"--record", dir + "/calls", "--report", dir + "/report.json"});
  const Result r = replay_capture(call_pcap, dir + "/out.wav", record_args);
  EXPECT_NE(r.node_log.find(": the caller's voice to 127.0.0.1:" + std::to_string(uas_media) +
                            " (PCMU/8000), left"),
            std::string::npos)
      << r.node_log;
  EXPECT_NE(r.node_log.find(": the callee's voice to 127.0.0.1:" + std::to_string(uac_media) +
                            " (PCMA/8000 telephone-event/8000), right"),
            std::string::npos)
      << r.node_log;
  EXPECT_EQ(r.stats["sources"].size(), 2u) << r.stats.dump(2);
  // The caller's RFC 2833 digit (SIPp's dtmf_2833_1.pcap, PT 101 as the offer maps it, though
  // the answer left it out): one event, its duration as tshark reads the last packet.
  const auto [dtmf_rc, durations] = run_command(
      "tshark -r /usr/share/sip-tester/dtmf_2833_1.pcap -o rtp.heuristic_rtp:TRUE -T fields -e "
      "rtpevent.duration 2>/dev/null | sort -n | tail -1");
  ASSERT_EQ(dtmf_rc, 0);
  const double dtmf_ms = std::stod(durations) / 8.0;
  std::ostringstream dtmf_line;
  dtmf_line << "DTMF 1 (event 1, " << dtmf_ms << " ms) from 127.0.0.1:" << uac_media << " in call ";
  EXPECT_NE(r.node_log.find(dtmf_line.str()), std::string::npos) << dtmf_line.str() << "\n"
                                                                 << r.node_log;
  EXPECT_NE(r.node_log.find("(caller)"), std::string::npos);
  EXPECT_EQ(r.stats["node"]["telephone_events"], 1);
  // Each second aligned on its own within 2 ms: the drift loop trims the first packet's
  // sub-millisecond excess delay by slewing (at most ~300 ppm here), which a whole-clip
  // correlation of 8 kHz speech reads as a mismatch.
  const Audio left = channel_of(r.capture, 0), right = channel_of(r.capture, 1);
  const double left_caller = min_window_correlation(left, caller, 2400, 48000, 96);
  const double right_callee = min_window_correlation(right, callee, 2400, 48000, 96);
  EXPECT_GE(left_caller, 0.99);
  EXPECT_GE(right_callee, 0.99);
  EXPECT_LT(best_correlation(left, callee, 2400), 0.5);
  EXPECT_LT(best_correlation(right, caller, 2400), 0.5);
  RecordProperty("left_caller_correlation", std::to_string(left_caller));
  RecordProperty("right_callee_correlation", std::to_string(right_callee));
  // --record: one stereo WAV for the call, named by its start and Call-ID, with the same
  // voices on the same sides; --report names the call, its digit and both directions.
  std::vector<std::filesystem::path> recordings;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/calls"))
    recordings.push_back(e.path());
  ASSERT_EQ(recordings.size(), 1u);
  json report;
  std::ifstream(dir + "/report.json") >> report;
  ASSERT_EQ(report["calls"].size(), 1u) << report.dump(2);
  const std::string call_id = report["calls"][0]["call_id"];
  EXPECT_NE(recordings[0].filename().string().find(call_id.substr(0, call_id.find('@'))),
            std::string::npos)
      << recordings[0];
  EXPECT_EQ(report["calls"][0]["digits"], "1");
  EXPECT_EQ(report["calls"][0]["caller"][0]["payload"], "pcma/8000/1");
  EXPECT_EQ(report["calls"][0]["callee"][0]["payload"], "pcmu/8000/1");
  const Audio rec = read_wav(recordings[0].string());
  EXPECT_EQ(rec.channels, 2);
  EXPECT_EQ(rec.rate, 48000);
  EXPECT_GE(min_window_correlation(channel_of(rec, 0), caller, 2400, 48000, 96), 0.99);
  EXPECT_GE(min_window_correlation(channel_of(rec, 1), callee, 2400, 48000, 96), 0.99);
  EXPECT_LT(best_correlation(channel_of(rec, 0), callee, 2400), 0.5);

  // Without SIP: the heuristic finds both flows and pairs them into one call.
  const std::string rtp_only = dir + "/rtp_only.pcap";
  ASSERT_EQ(run_command("tcpdump -r " + call_pcap + " -w " + rtp_only + " 'not port " +
                        std::to_string(uas_port) + " and not port " + std::to_string(uac_port) +
                        "' 2>/dev/null")
                .first,
            0);
  const Result h = replay_capture(rtp_only, dir + "/out_rtp.wav", args);
  EXPECT_NE(h.node_log.find("(SIP 0, "), std::string::npos) << h.node_log;
  EXPECT_NE(h.node_log.find("(found by RTP heuristics)"), std::string::npos) << h.node_log;
  const Audio hl = channel_of(h.capture, 0), hr = channel_of(h.capture, 1);
  // Which flow is confirmed first decides the sides; each channel holds one voice.
  auto window = [](const Audio& c, const Audio& e) {
    return min_window_correlation(c, e, 2400, 48000, 96);
  };
  const double straight = std::min(window(hl, caller), window(hr, callee));
  const double swapped = std::min(window(hl, callee), window(hr, caller));
  EXPECT_GE(std::max(straight, swapped), 0.99)
      << "straight " << straight << ", swapped " << swapped << "\n"
      << h.node_log;

  // --select another call: this one is muted on the device, and still recorded. With a short
  // --source-timeout its sources leave soon after its last packet, and the recording is closed
  // then (the call ended with its BYE), not at exit: its "wrote" line comes before the final
  // stats line.
  std::filesystem::create_directories(dir + "/calls_selected");
  const Result sel = replay_capture(call_pcap, dir + "/out_sel.wav",
                                    {"--latency", "200ms", "--select", "another-call", "--record",
                                     dir + "/calls_selected", "--source-timeout", "300ms"});
  EXPECT_NE(sel.node_log.find("(not --select: muted)"), std::string::npos) << sel.node_log;
  const auto wrote_at = sel.node_log.find("rtpnode: wrote " + dir + "/calls_selected/");
  EXPECT_NE(wrote_at, std::string::npos) << sel.node_log;
  EXPECT_LT(wrote_at, sel.node_log.find("(final)")) << sel.node_log;
  float peak = 0;
  for (float v : sel.capture.samples) peak = std::max(peak, std::abs(v));
  EXPECT_EQ(peak, 0.0f) << "a call --select left out reached the device";
  int selected_recordings = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/calls_selected")) {
    ++selected_recordings;
    const Audio muted_rec = read_wav(e.path().string());
    EXPECT_GE(min_window_correlation(channel_of(muted_rec, 0), caller, 2400, 48000, 96), 0.99);
  }
  EXPECT_EQ(selected_recordings, 1);
}

// Issue #14: the same SIPp call with its SIP over one TCP connection (SIPp -t t1): the capture's
// TCP segments are put back into streams and cut into messages (RFC 3261 §18.3), and the call is
// found by its SIP/SDP as over UDP, caller left, callee right.
TEST(Capture, SippCallWithSipOverTcpIsFoundBySip) {
  const std::string dir = test_dir();
  const SippCall call = sipp_call(dir, "t1");
  const auto [rc, tcp_count] =
      run_command("tcpdump -r " + call.call_pcap + " -n 'tcp port " +
                  std::to_string(call.uas_port) + " and tcp[13] & 8 != 0' 2>/dev/null | wc -l");
  ASSERT_EQ(rc, 0);
  ASSERT_GT(std::stoi(tcp_count), 3) << "SIPp did not use TCP";
  const Audio caller = independent_g711_decode(dir, "/usr/share/sip-tester/g711a.pcap", "alaw");
  const Audio callee = independent_g711_decode(dir, call.callee_pcap, "mulaw");
  const Result r = replay_capture(call.call_pcap, dir + "/out.wav",
                                  {"--latency", "200ms", "--report", dir + "/report.json"});
  EXPECT_NE(r.node_log.find(": the caller's voice to 127.0.0.1:" + std::to_string(call.uas_media) +
                            " (PCMU/8000), left"),
            std::string::npos)
      << r.node_log;
  EXPECT_NE(r.node_log.find(": the callee's voice to 127.0.0.1:" + std::to_string(call.uac_media) +
                            " (PCMA/8000 telephone-event/8000), right"),
            std::string::npos)
      << r.node_log;
  EXPECT_EQ(r.node_log.find("(found by RTP heuristics)"), std::string::npos) << r.node_log;
  json report;
  std::ifstream(dir + "/report.json") >> report;
  EXPECT_GE(report["capture"]["sip_over_tcp"].get<int>(), 4) << report.dump(2);  // INVITE..BYE
  EXPECT_EQ(report["capture"]["tcp_holes"], 0);
  ASSERT_EQ(report["calls"].size(), 1u) << report.dump(2);
  EXPECT_EQ(report["calls"][0]["digits"], "1");
  const Audio left = channel_of(r.capture, 0), right = channel_of(r.capture, 1);
  EXPECT_GE(min_window_correlation(left, caller, 2400, 48000, 96), 0.99);
  EXPECT_GE(min_window_correlation(right, callee, 2400, 48000, 96), 0.99);
}

/// The RTP packets to `port` in `pcap` as tshark reads them: (sequence number, timestamp,
/// payload), in capture order.
struct CapturedRtp {
  long seq = 0;
  std::uint32_t ts = 0;
  std::vector<std::uint8_t> payload;
};
std::vector<CapturedRtp> tshark_rtp(const std::string& pcap, int port) {
  const auto [rc, out] = run_command("tshark -r " + pcap + " -d udp.port==" + std::to_string(port) +
                                     ",rtp -Y rtp -T fields -e rtp.seq -e rtp.timestamp -e "
                                     "rtp.payload 2>/dev/null");
  EXPECT_EQ(rc, 0);
  std::vector<CapturedRtp> packets;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    CapturedRtp p;
    std::string hex;
    if (!(f >> p.seq >> p.ts >> hex)) continue;
    hex.erase(std::remove(hex.begin(), hex.end(), ':'), hex.end());
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
      p.payload.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    packets.push_back(std::move(p));
  }
  return packets;
}

/// What bcg729 itself makes of `packets` (G.729 with Annex B, in order, none reordered): each
/// payload's 10-byte frames and trailing SID frame decoded, and every 10 ms the timestamps skip
/// (lost, or not sent) decoded as an erased frame: concealment after speech, comfort noise after
/// a SID (Annex B.27). At 8 kHz.
Audio bcg729_reference(const std::vector<CapturedRtp>& packets) {
  Audio a;
  a.rate = 8000;
  a.channels = 1;
  bcg729DecoderChannelContextStruct* dec = initBcg729DecoderChannel();
  std::int16_t pcm[80];
  auto add = [&] {
    for (std::int16_t v : pcm) a.samples.push_back(v / 32768.0f);
  };
  std::uint32_t next_ts = packets.empty() ? 0 : packets.front().ts;
  for (const CapturedRtp& p : packets) {
    for (std::uint32_t t = next_ts; static_cast<std::int32_t>(p.ts - t) > 0; t += 80) {
      bcg729Decoder(dec, nullptr, 0, 1, 0, 0, pcm);
      add();
    }
    std::size_t at = 0;
    for (; at + 10 <= p.payload.size(); at += 10) {
      bcg729Decoder(dec, p.payload.data() + at, 10, 0, 0, 0, pcm);
      add();
    }
    if (at + 2 == p.payload.size()) {
      bcg729Decoder(dec, p.payload.data() + at, 2, 0, 1, 0, pcm);
      add();
    }
    next_ts =
        p.ts + static_cast<std::uint32_t>(p.payload.size() / 10 + p.payload.size() % 10 / 2) * 80;
  }
  closeBcg729DecoderChannel(dec);
  return a;
}

// Issue #14: G.729 with Annex B from a capture. rtpsend (bcg729's encoder) sends a real recording
// with a pause, as G.729A with VAD: 10 ms packets, 2-byte SID frames, nothing during the pause,
// 2 % of packets lost; tcpdump captures it; `rtpnode --pcap` finds the stream by the RTP
// heuristic (static PT 18) and plays what bcg729 itself decodes from the captured frames, its
// concealment and comfort noise included. A second capture without VAD or loss is held to
// ffmpeg's G.729 decoder, written independently of bcg729.
// Issue #14: a capture rendered into a file runs offline, on a virtual clock, as fast as the CPU
// allows -- and is the same render as the real-time replay (--real-time): the same calls found,
// the same report, per-call recordings sample for sample (measured: every sample equal; 1 % may
// differ where the real-time loop was descheduled on a loaded machine). Four concurrent SIP/G.711
// calls (tools/make_calls_pcap.py), each side a tone of its own; auto latency (the delay trims
// run).
TEST(Capture, OfflineRenderMatchesTheRealTimeReplayWithoutItsPace) {
  const std::string dir = test_dir();
  const std::string pcap = dir + "/calls.pcap";
  ASSERT_EQ(run_command(std::string("python3 ") + RTPNODE_SOURCE_DIR +
                        "/tools/make_calls_pcap.py " + pcap + " --calls 4 --seconds 6")
                .first,
            0);
  auto render = [&](const std::string& name, bool real_time) {
    std::filesystem::create_directories(dir + "/" + name);
    std::vector<std::string> args{RTPNODE_BIN,
                                  "--pcap",
                                  pcap,
                                  "--output",
                                  dir + "/" + name + ".wav",
                                  "--rate",
                                  "8000",
                                  "--record",
                                  dir + "/" + name,
                                  "--report",
                                  dir + "/" + name + ".json"};
    if (real_time) args.push_back("--real-time");
    const auto t0 = std::chrono::steady_clock::now();
    Process p(args, dir + "/" + name + ".log");
    EXPECT_EQ(p.wait(std::chrono::seconds(60)), std::optional<int>(0)) << p.log();
    return std::pair{std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                     p.log()};
  };
  const auto [real_s, real_log] = render("real", true);
  const auto [offline_s, offline_log] = render("offline", false);
  EXPECT_NE(offline_log.find("rendering offline"), std::string::npos) << offline_log;
  // Not paced: the capture holds 7 s; the real-time replay takes at least that. (How much faster
  // the offline render is, is a benchmark's figure: tools/bench_offline.sh.)
  EXPECT_GE(real_s, 6.5);
  EXPECT_LT(offline_s, real_s / 3) << offline_log;
  json real_report, offline_report;
  std::ifstream(dir + "/real.json") >> real_report;
  std::ifstream(dir + "/offline.json") >> offline_report;
  ASSERT_EQ(offline_report["calls"].size(), 4u) << offline_report.dump(2);
  ASSERT_EQ(real_report["calls"].size(), 4u) << real_report.dump(2);
  for (std::size_t c = 0; c < 4; ++c) {
    const json& a = offline_report["calls"][c];
    const json& b = real_report["calls"][c];
    EXPECT_EQ(a["call_id"], b["call_id"]);
    for (const char* side : {"caller", "callee"}) {
      ASSERT_EQ(a[side].size(), 1u) << a.dump(2);
      for (const char* key : {"packets", "lost", "late", "duplicates", "jitter_max_ms", "mos"})
        EXPECT_EQ(a[side][0][key], b[side][0][key]) << a["call_id"] << " " << side << " " << key;
      EXPECT_EQ(a[side][0]["packets"], 300);
      EXPECT_NEAR(a[side][0]["receiver_delay_ms"].get<double>(),
                  b[side][0]["receiver_delay_ms"].get<double>(), 1.0);
    }
  }
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/offline")) {
    ++files;
    const Audio off = read_wav(e.path().string());
    const Audio real = read_wav(dir + "/real/" + e.path().filename().string());
    ASSERT_EQ(off.channels, 2);
    // The real-time run may stop a block later: its file can be longer by that much.
    ASSERT_GE(real.frames(), off.frames() - 1) << e.path();
    ASSERT_GT(off.frames(), 6u * 8000u);
    std::size_t differing = 0;
    double energy_left = 0, energy_right = 0;
    for (std::size_t i = 0; i < std::min(off.frames(), real.frames()); ++i) {
      differing += off.samples[2 * i] != real.samples[2 * i];
      differing += off.samples[2 * i + 1] != real.samples[2 * i + 1];
      energy_left += off.samples[2 * i] * off.samples[2 * i];
      energy_right += off.samples[2 * i + 1] * off.samples[2 * i + 1];
    }
    EXPECT_LE(differing, off.samples.size() / 100) << e.path();
    RecordProperty(e.path().filename().string() + "_differing_samples",
                   static_cast<int>(differing));
    EXPECT_GT(energy_left, 500.0) << "the caller's tone is in the left channel";
    EXPECT_GT(energy_right, 500.0) << "the callee's tone is in the right channel";
  }
  EXPECT_EQ(files, 4u);
  RecordProperty("real_time_s", std::to_string(real_s));
  RecordProperty("offline_s", std::to_string(offline_s));
}

TEST(Capture, G729WithAnnexBPlaysAsBcg729DecodesItAndAsFfmpegDecodesIt) {
  const std::string dir = test_dir();
  const int port = free_udp_port();
  Audio input = speech_8k();
  const Audio speech = input;
  input.samples.resize(input.samples.size() + 12000, 0.0f);  // a 1.5 s pause
  input.samples.insert(input.samples.end(), speech.samples.begin(), speech.samples.end());
  input.samples.resize(input.samples.size() + 4000, 0.0f);
  const std::string pcap = dir + "/g729b.pcap";
  const json sent = capture_stream(
      dir, pcap, "lo", port, input,
      {"--codec", "g729", "--ptime", "10ms", "--dtx", "--loss", "2%", "--seed", "3", "--no-bye"});
  EXPECT_GT(sent["streams"][0].value("dtx_suppressed", 0), 50) << sent.dump(2);
  const std::vector<CapturedRtp> packets = tshark_rtp(pcap, port);
  ASSERT_GT(packets.size(), 200u);
  int sid = 0;
  for (const CapturedRtp& p : packets) sid += p.payload.size() % 10 == 2;
  EXPECT_GE(sid, 1) << "no SID frame: Annex B untested";
  const Audio expected = resample(bcg729_reference(packets), 48000, 4);
  const Result r =
      replay_capture(pcap, dir + "/out.wav",
                     {"--latency", "200ms", "--drift", "off", "--report", dir + "/report.json"});
  const json& src = only_source(r);
  EXPECT_EQ(src.value("payload", ""), "g729/8000/1") << src.dump(2);
  EXPECT_GT(src.value("packets_lost", 0), 0) << "rtpsend lost nothing: a weak test";
  EXPECT_EQ(src.value("packets_malformed", -1), 0);
  // The pause (1.5 s, 12000 frames at 8 kHz) is the sender's silence filled with Annex B
  // comfort noise, not concealment that fades to silence.
  EXPECT_GT(src.value("frames_gap", 0), 8000) << "the pause was not a DTX gap";
  EXPECT_LT(src.value("frames_concealed", -1), 2000) << "only the lost packets are concealed";
  const Audio out = channel_of(r.capture, 0);
  const std::vector<double> windows = window_correlations(out, expected, 4800, 24000, 96);
  ASSERT_GE(windows.size(), 6u);
  const double worst = *std::min_element(windows.begin(), windows.end());
  EXPECT_GE(worst, 0.99);
  RecordProperty("bcg729_min_window_correlation", std::to_string(worst));
  json report;
  std::ifstream(dir + "/report.json") >> report;
  ASSERT_EQ(report["calls"].size(), 1u) << report.dump(2);
  EXPECT_EQ(report["calls"][0]["caller"][0]["impairment_source"], "G.113 App. I: G.729A with VAD");

  // Without VAD or loss: ffmpeg's decoder of the same frames.
  const std::string plain = dir + "/g729.pcap";
  capture_stream(dir, plain, "lo", port, input, {"--codec", "g729", "--ptime", "20ms", "--no-bye"});
  const std::string raw = dir + "/frames.g729", ref = dir + "/ffmpeg_g729.wav";
  {
    std::ofstream f(raw, std::ios::binary);
    for (const CapturedRtp& p : tshark_rtp(plain, port))
      f.write(reinterpret_cast<const char*>(p.payload.data()),
              static_cast<std::streamsize>(p.payload.size()));
  }
  ASSERT_EQ(run_command("ffmpeg -v error -y -f g729 -i " + raw + " -ar 8000 " + ref).first, 0);
  const Audio independent = resample(read_wav(ref), 48000, 4);
  const Result r2 =
      replay_capture(plain, dir + "/out2.wav", {"--latency", "200ms", "--drift", "off"});
  const double ffmpeg_worst =
      min_window_correlation(channel_of(r2.capture, 0), independent, 4800, 24000, 96);
  EXPECT_GE(ffmpeg_worst, 0.99);
  RecordProperty("ffmpeg_min_window_correlation", std::to_string(ffmpeg_worst));
}

TEST(System, PcmuMatchesReferenceDecode) {
  Scenario s;
  s.input = speech_8k();
  s.send_args = {"--codec", "pcmu"};
  const Result r = run(s);
  const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
  const Audio expected = resample(reference_decode(s.input, f, 160), 48000, 4);
  expect_exact(r, expected, 1e-6f);
  expect_clean_stats(r);
}

TEST(System, G722MatchesReferenceDecode) {
  Scenario s;
  Audio wide = resample(speech_8k(), 16000, 10);
  for (float& v : wide.samples)
    v = std::clamp(static_cast<float>(std::lround(v * 32768.0f)) / 32768.0f, -1.0f,
                   32767.0f / 32768.0f);
  s.input = wide;
  s.send_args = {"--codec", "g722"};
  const Result r = run(s);
  const PayloadFormat f{Codec::g722, 8000, 16000, 1};
  const Audio expected = resample(reference_decode(s.input, f, 320), 48000, 4);
  expect_exact(r, expected, 1e-6f);
  expect_clean_stats(r);
}

TEST(System, OpusCorrelatesWithInput) {
  Scenario s;
  s.input = load_recording(std::string(kAlsaDir) + "Front_Center.wav");
  s.node_args = {"--payload", "96=opus/48000/2"};
  s.send_args = {"--codec", "opus", "--pt", "96", "--channels", "2", "--bitrate", "96000"};
  const Result r = run(s);
  EXPECT_GE(best_correlation(r.capture, s.input, 2000), 0.9);
  expect_clean_stats(r);
}

TEST(System, RawPcmFromSeedSenderPlays) {
  Scenario s;
  s.input = speech_8k();
  s.node_args = {"--raw", "s16le/8000/1"};
  s.send_args = {"--raw"};
  const Result r = run(s);
  const Audio expected = resample(s.input, 48000, 4);
  expect_exact(r, expected, 1e-6f);
  const json& src = only_source(r);
  EXPECT_EQ(src.value("packets_received", -1), r.sent["packets"].get<int>());
  EXPECT_EQ(src.value("underruns", -1), 0) << r.stats.dump(2) << r.node_log;
  EXPECT_EQ(src.value("payload", ""), "s16le/8000/1");
}

// Issue #17: the seed sender's pacing. It sends 320-byte datagrams of 8 kHz s16le mono and
// sleeps 10 ms after each (20 ms of audio): 1.7x real time in the issue, 2x here, on purpose;
// its own receiver buffers everything. 20 s of speech sent that way play intact, in order, with a
// backlog that grows to seconds and drains (--max-latency 20s allows it).
TEST(System, RawSenderAheadOfRealTimeLikeTheSeedSenderPlaysEverySampleInOrder) {
  const std::string dir = test_dir();
  Audio input;
  input.rate = 8000;
  input.channels = 1;
  for (const char* name : {"agent-loggedoff", "call-forwarding", "agent-newlocation",
                           "all-circuits-busy-now", "basic-pbx-ivr-main", "call-waiting",
                           "check-number-dial-again", "cannot-complete-as-dialed"}) {
    if (input.frames() >= 20u * 8000) break;
    const Audio a = load_recording(std::string(kAsteriskDir) + name + ".wav");
    input.samples.insert(input.samples.end(), a.samples.begin(), a.samples.end());
  }
  input.samples.resize(std::min<std::size_t>(input.samples.size(), 20u * 8000));
  ASSERT_GE(input.frames(), 15u * 8000);
  const int port = free_udp_port();
  const double seconds = static_cast<double>(input.frames()) / 8000.0;
  const int node_secs = static_cast<int>(std::ceil(seconds)) + 3;
  Process node({RTPNODE_BIN,
                "--listen",
                "127.0.0.1:" + std::to_string(port),
                "--raw",
                "s16le/8000/1",
                "--output",
                dir + "/capture.wav",
                "--output-format",
                "f32",
                "--period",
                std::to_string(kPeriod),
                "--duration",
                std::to_string(node_secs) + "s",
                "--latency",
                kTestLatency,
                "--max-latency",
                "20s",
                "--drift",
                "off",
                "--stats-json",
                dir + "/stats.json",
                "--stats-interval",
                "1s"},
               dir + "/rtpnode.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  const auto t0 = std::chrono::steady_clock::now();
  double max_backlog_ms = 0;
  for (std::size_t at = 0; at < input.frames(); at += 160) {
    std::array<std::uint8_t, 320> d{};
    for (std::size_t i = 0; i < 160 && at + i < input.frames(); ++i) {
      const auto v = static_cast<std::int16_t>(std::lround(input.samples[at + i] * 32768.0f));
      d[2 * i] = static_cast<std::uint8_t>(v & 0xff);
      d[2 * i + 1] = static_cast<std::uint8_t>((v >> 8) & 0xff);
    }
    ASSERT_EQ(sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 320);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (at % 8000 == 0) {
      std::ifstream in(dir + "/stats.json");
      const json j = json::parse(in, nullptr, false);
      if (!j.is_discarded() && j["sources"].size() == 1)
        max_backlog_ms = std::max(max_backlog_ms, j["sources"][0].value("raw_backlog_ms", 0.0));
    }
  }
  close(fd);
  const double send_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(node.wait(std::chrono::seconds(node_secs + 5)), std::optional<int>(0)) << node.log();
  Result r;
  r.node_log = node.log();
  r.capture = read_wav(dir + "/capture.wav");
  std::ifstream(dir + "/stats.json") >> r.stats;
  std::printf("raw sender: %.1f s of audio sent in %.1f s; backlog up to %.0f ms\n", seconds,
              send_s, max_backlog_ms);
  EXPECT_LT(send_s, seconds * 0.8) << "the sender was not faster than real time";
  EXPECT_GT(max_backlog_ms, 1000.0);
  const json& src = only_source(r);
  EXPECT_EQ(src.value("packets_overflow", -1), 0);
  EXPECT_EQ(src.value("packets_late", -1), 0);
  expect_exact(r, resample(input, 48000, 4), 1e-6f);  // f32 output: as the device gets it
}

TEST(System, MalformedPacketsAndUnknownPayloadTypeAreCountedAndDropped) {
  Scenario s;
  s.input = stereo_recording();
  s.node_args = {"--payload", "97=L16/48000/2"};
  s.send_args = {"--codec", "l16", "--pt", "97"};
  // What the test injects, by kind (RFC 3550 §5.1 / A.1 rejections).
  const std::map<std::string, int> injected{{"too_short", 5},
                                            {"bad_version", 4},
                                            {"csrc_overflow", 3},
                                            {"extension_overflow", 2},
                                            {"bad_padding", 2}};
  constexpr int kUnknownPt = 6;
  s.during = [&](int port) {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    auto send = [&](std::vector<std::uint8_t> p) {
      sendto(fd, p.data(), p.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
      std::this_thread::sleep_for(std::chrono::milliseconds(37));
    };
    std::vector<std::uint8_t> valid(40, 0);
    rtp_write_header(valid, 77, false, 1, 1, 0xbadc0de);
    for (int i = 0; i < kUnknownPt; ++i) send(valid);
    for (int i = 0; i < injected.at("too_short"); ++i) send({0x80, 0x60, 0, 1, 0});
    for (int i = 0; i < injected.at("bad_version"); ++i) {
      auto p = valid;
      p[0] = 0x40;
      send(p);
    }
    for (int i = 0; i < injected.at("csrc_overflow"); ++i) {
      auto p = valid;
      p[0] = 0x8f;
      p.resize(20);
      send(p);
    }
    for (int i = 0; i < injected.at("extension_overflow"); ++i) {
      auto p = valid;
      p[0] = 0x90;
      p[14] = 0xff;
      send(p);
    }
    for (int i = 0; i < injected.at("bad_padding"); ++i) {
      auto p = valid;
      p[0] = 0xa0;
      p.back() = 200;
      send(p);
    }
    close(fd);
  };
  const Result r = run(s);
  expect_exact(r, s.input);
  expect_clean_stats(r);
  for (const auto& [kind, n] : injected)
    EXPECT_EQ(r.stats["node"]["packets_rejected"][kind], n) << kind;
  EXPECT_EQ(r.stats["node"]["packets_malformed"], 16);
  EXPECT_EQ(r.stats["node"]["packets_unknown_payload_type"], kUnknownPt);
}

TEST(System, Ipv6StreamPlaysSampleForSample) {
  Scenario s;
  s.input = stereo_recording();
  s.host = "::1";
  s.node_args = {"--payload", "97=L16/48000/2"};
  s.send_args = {"--codec", "l16", "--pt", "97"};
  const Result r = run(s);
  expect_exact(r, s.input);
  expect_clean_stats(r);
  EXPECT_EQ(only_source(r).value("remote", "").rfind("[::1]:", 0), 0u);
}

TEST(System, SilentSourceTimesOutAndKeepsItsFinalStats) {
  Scenario s;
  s.input = stereo_recording();
  s.node_args = {"--payload", "97=L16/48000/2", "--source-timeout", "1s"};
  s.send_args = {"--codec", "l16", "--pt", "97", "--no-bye"};  // a sender that just stops
  const Result r = run(s);
  expect_exact(r, s.input);  // removal comes after its audio played out
  expect_clean_stats(r);
  EXPECT_EQ(only_source(r).value("state", ""), "departed");
  EXPECT_EQ(r.stats["node"].value("sources_active", -1), 0);
  EXPECT_NE(r.node_log.find("timed out"), std::string::npos);
}

TEST(System, EventLogExplainsLatePacketsConcealmentAPauseAndAnSsrcChange) {
  Scenario s;
  s.input = speech_8k();
  s.send_seconds = 6;
  s.latency = "40ms";  // fixed and short: delays of up to 100 ms make some packets late
  const std::string events = test_dir() + "/events.jsonl";
  s.node_args = {"--event-log", events};
  s.send_args = {"--codec",          "pcmu", "--seed",  "7",       "--jitter", "uniform:0-100ms",
                 "--ssrc-change-at", "2s",   "--pause", "600ms@4s"};
  const Result r = run(s);
  std::ifstream in(events);
  std::map<std::string, int> kinds;
  std::map<std::string, int> causes;
  int late_packets = 0;
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line);
    const std::string kind = e["event"];
    ++kinds[kind];
    if (kind == "concealment_burst" || kind == "late_burst") {
      ASSERT_TRUE(e.contains("buffer")) << line;
      for (const char* k : {"queued_ms", "target_delay_ms", "playout_delay_ms", "jitter_ms",
                            "ms_since_last_packet"})
        EXPECT_TRUE(e["buffer"].contains(k)) << line;
    }
    if (kind == "concealment_burst") ++causes[e["cause"].get<std::string>()];
    if (kind == "late_burst") late_packets += e["packets_late"].get<int>();
    if (kind == "ssrc_changed") {
      EXPECT_NE(e["old_ssrc"], e["new_ssrc"]);
    }
  }
  EXPECT_EQ(kinds["source_joined"], 2);
  EXPECT_EQ(kinds["ssrc_changed"], 1);
  EXPECT_GE(kinds["late_burst"], 1);
  EXPECT_GE(causes["late_packets"], 1);
  EXPECT_GE(causes["stream_stalled"], 1) << "the 600 ms pause";
  // Late-packet bursts add up to the late packets counted (the last burst may still be open
  // when rtpnode stops).
  int counted_late = 0;
  for (const auto& src : r.stats["sources"]) counted_late += src.value("packets_late", 0);
  EXPECT_GT(late_packets, 0);
  EXPECT_LE(late_packets, counted_late);
  std::cerr << "events:";
  for (const auto& [k, n] : kinds) std::cerr << " " << k << "=" << n;
  std::cerr << "; concealment causes:";
  for (const auto& [k, n] : causes) std::cerr << " " << k << "=" << n;
  std::cerr << "; late packets in bursts " << late_packets << " of " << counted_late << "\n";
}

/// The value of the only series of `family` (with any labels).
double only_series(const rtpnode::test::PrometheusCheck& c, const std::string& family) {
  double v = -1;
  int n = 0;
  for (const auto& [key, value] : c.samples)
    if (key == family || key.rfind(family + "{", 0) == 0) {
      v = value;
      ++n;
    }
  EXPECT_EQ(n, 1) << family;
  return v;
}

TEST(System, InjectedFaultsAreCountedExactlyInStatsMetricsAndJson) {
  Scenario s;
  s.input = speech_8k();
  s.send_seconds = 6;
  const std::string trace = test_dir() + "/trace.txt";
  // No BYE: the source stays active (and in /metrics) after rtpsend ends, until the scrape.
  s.send_args = {"--codec",   "pcmu", "--seed",      "7",   "--loss",  "5%", "--duplicate", "1%",
                 "--reorder", "2%",   "--trace-out", trace, "--no-bye"};
  s.http = true;
  std::string metrics, stats;
  s.after_send = [&](int http_port) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(800));  // the last packets play out (300 ms)
    const HttpReply m = http_request(http_port, "GET", "/metrics");
    const HttpReply j = http_request(http_port, "GET", "/stats");
    EXPECT_EQ(m.status, 200);
    EXPECT_EQ(j.status, 200);
    metrics = m.body;
    stats = j.body;
  };
  const Result r = run(s);
  // Expected losses: lost packets before the last one that was sent (a loss at the very end is
  // indistinguishable from the end of the stream, RFC 3550 A.3).
  std::ifstream in(trace);
  std::vector<std::string> fates;
  std::vector<double> send_at;  // ns after the first packet, injected delay included
  for (std::string seq, ts, at, fate; in >> seq >> ts >> at >> fate;) {
    fates.push_back(fate);
    send_at.push_back(std::stod(at));
  }
  ASSERT_EQ(fates.size(), r.sent["packets"].get<std::size_t>());
  std::size_t last_sent = 0;
  for (std::size_t i = 0; i < fates.size(); ++i)
    if (fates[i] != "lost") last_sent = i;
  const auto lost =
      std::count(fates.begin(), fates.begin() + static_cast<std::ptrdiff_t>(last_sent), "lost");
  // Reordered as the receiver sees it: a packet arriving after a later one. rtpsend counts each
  // delay it injects; one whose successor was lost overtakes nothing.
  int reordered = 0;
  for (std::size_t i = 0; i < fates.size(); ++i) {
    if (fates[i] == "lost") continue;
    bool overtaken = false;
    for (std::size_t j = i + 1; j < fates.size() && !overtaken; ++j)
      overtaken = fates[j] != "lost" && send_at[j] < send_at[i];
    reordered += overtaken ? 1 : 0;
  }
  const json& faults = r.sent["faults"];
  EXPECT_GT(lost, 5);
  EXPECT_GT(faults["duplicated"].get<int>(), 0);
  EXPECT_GT(reordered, 0);
  EXPECT_LE(reordered, faults["reordered"].get<int>());
  const int received = static_cast<int>(last_sent + 1) - static_cast<int>(lost);
  const json& src = only_source(r);
  EXPECT_EQ(src.value("packets_lost", -1), lost) << r.stats.dump(2);
  EXPECT_EQ(src.value("packets_duplicate", -1), faults["duplicated"].get<int>());
  EXPECT_EQ(src.value("packets_reordered", -1), reordered);
  EXPECT_EQ(src.value("packets_received", -1), received);
  EXPECT_EQ(src.value("packets_late", -1), 0);  // reordering (30 ms) is within the playout delay
  // Without BYE the source plays silence for seconds after the stream until rtpnode stops; an
  // underrun in that tail can only come from a device xrun (a VM stall of the JACK server).
  EXPECT_LE(src.value("underruns", -1), r.stats["node"].value("xruns", 0)) << r.node_log;
  EXPECT_EQ(src.value("frames_concealed", 0) / 160 >= lost, true);

  // The same counts scraped over HTTP while the source was active.
  const auto prom = rtpnode::test::check_prometheus(metrics);
  for (const auto& p : prom.problems) ADD_FAILURE() << p;
  EXPECT_EQ(only_series(prom, "rtpnode_source_packets_lost"), static_cast<double>(lost)) << metrics;
  EXPECT_EQ(only_series(prom, "rtpnode_source_packets_duplicate_total"),
            faults["duplicated"].get<double>());
  EXPECT_EQ(only_series(prom, "rtpnode_source_packets_reordered_total"), reordered);
  EXPECT_EQ(only_series(prom, "rtpnode_source_packets_received_total"), received);
  EXPECT_EQ(only_series(prom, "rtpnode_source_packets_late_total"), 0);
  EXPECT_EQ(only_series(prom, "rtpnode_datagrams_total"), r.sent["datagrams"].get<double>());
  const json scraped = json::parse(stats, nullptr, false);
  ASSERT_FALSE(scraped.is_discarded()) << stats;
  ASSERT_EQ(scraped["sources"].size(), 1u);
  EXPECT_EQ(scraped["sources"][0]["state"], "active");
  EXPECT_EQ(scraped["sources"][0]["packets_lost"], lost);
  EXPECT_EQ(scraped["sources"][0]["packets_duplicate"], faults["duplicated"]);
  EXPECT_EQ(scraped["sources"][0]["packets_reordered"], reordered);
  EXPECT_EQ(scraped["sources"][0]["packets_received"], received);
  // Up to the end of the stream's audio, no underrun (unless the device itself stalled).
  EXPECT_LE(scraped["sources"][0]["underruns"].get<int>(), scraped["node"]["xruns"].get<int>())
      << stats;

  // Independent checks: Prometheus' own Python client parses the exposition, and the JSON
  // validates against docs/stats.schema.json (python3-jsonschema, draft 2020-12).
  const std::string dir = test_dir();
  std::ofstream(dir + "/metrics.txt") << metrics;
  std::ofstream(dir + "/stats.json") << stats;
  std::ofstream(dir + "/check.py") << R"(import json, sys
import jsonschema
from prometheus_client.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(open(sys.argv[1]).read()))
names = {f.name for f in families}
assert "rtpnode_source_packets_received" in names, names
schema = json.load(open(sys.argv[2]))
jsonschema.Draft202012Validator.check_schema(schema)
jsonschema.validate(json.load(open(sys.argv[3])), schema, cls=jsonschema.Draft202012Validator)
print("families", len(families))
)";
  const auto [rc, out] = run_command("/usr/bin/python3 " + dir + "/check.py " + dir +
                                     "/metrics.txt " RTPNODE_SOURCE_DIR "/docs/stats.schema.json " +
                                     dir + "/stats.json 2>&1");
  EXPECT_EQ(rc, 0) << out;
}

/// A network namespace joined to this one by a veth pair: 10.213.X.1 here, 10.213.X.2 there.
/// A client in it is not local to rtpnode. Removed (with the pair) on destruction.
class RemoteNamespace {
 public:
  RemoteNamespace() : name_("rtpnode-rm-" + std::to_string(getpid())) {
    const std::string x = std::to_string(getpid() % 250);
    const std::string a = "rtpv" + std::to_string(getpid() % 100000) + "a",
                      b = "rtpv" + std::to_string(getpid() % 100000) + "b";
    local_ = "10.213." + x + ".1";
    remote_ = "10.213." + x + ".2";
    ok_ =
        run_command("ip netns add " + name_ + " 2>&1").first == 0 &&
        run_command("ip link add " + a + " type veth peer name " + b + " 2>&1").first == 0 &&
        run_command("ip link set " + b + " netns " + name_ + " 2>&1").first == 0 &&
        run_command("ip addr add " + local_ + "/30 dev " + a + " && ip link set " + a + " up 2>&1")
                .first == 0 &&
        run_command("ip netns exec " + name_ + " sh -c 'ip addr add " + remote_ + "/30 dev " + b +
                    " && ip link set " + b + " up && ip link set lo up' 2>&1")
                .first == 0;
    link_ = a;
  }
  ~RemoteNamespace() {
    run_command("ip link del " + link_ + " 2>/dev/null");
    run_command("ip netns del " + name_ + " 2>/dev/null");
  }
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& local_address() const { return local_; }

 private:
  std::string name_, link_, local_, remote_;
  bool ok_ = false;
};

/// Sends raw bytes; returns the status code answered ("" when the server just closed).
std::string raw_exchange(int port, const std::string& bytes) {
  const int fd = rtpnode::test::connect_loopback_tcp(port);
  if (fd < 0) return "connect failed";
  send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return out.size() >= 12 ? out.substr(9, 3) : "";
}

TEST(System, HttpEndpointRefusesRemoteClientsAndSurvivesAbuseWhileAudioPlays) {
  RemoteNamespace remote;
  ASSERT_TRUE(remote.ok())
      << "cannot create a network namespace with a veth pair (needs root and iproute2)";
  Scenario s;
  s.input = speech_8k();
  s.send_seconds = 8;
  s.send_args = {"--codec", "pcmu"};
  s.http = true;
  s.http_address =
      "0.0.0.0";  // reachable from the other namespace: refused by policy, not by routing
  std::string remote_code, local_metrics;
  int fast_answers = 0, garbage_answers = 0, oversized_answers = 0;
  std::vector<double> latencies_ms;
  s.during_http = [&](int http_port) {
    // The last attempt's figures (run() may run the scenario again).
    fast_answers = garbage_answers = oversized_answers = 0;
    latencies_ms.clear();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the source plays
    const std::string url =
        "http://" + remote.local_address() + ":" + std::to_string(http_port) + "/metrics";
    remote_code = run_command("ip netns exec " + remote.name() +
                              " curl -s -m 3 -o /dev/null -w '%{http_code}' " + url)
                      .second;
    std::vector<int> half_open;
    for (int i = 0; i < 20; ++i) {
      const int fd = rtpnode::test::connect_loopback_tcp(http_port);
      if (fd >= 0 && send(fd, "GET /metr", 9, MSG_NOSIGNAL) == 9) half_open.push_back(fd);
    }
    std::uint64_t seed = 7;
    for (int i = 0; i < 50; ++i) {
      std::string junk(64 + i * 7, '\0');
      for (char& c : junk)
        c = static_cast<char>((seed = seed * 6364136223846793005ull + 1442695040888963407ull) >>
                              56);
      junk += "\r\n\r\n";
      const std::string code = raw_exchange(http_port, junk);
      garbage_answers += (code == "400" || code.empty()) ? 1 : 0;
    }
    for (int i = 0; i < 10; ++i) {
      const std::string code = raw_exchange(
          http_port,
          "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(20000, 'p') + "\r\n\r\n");
      oversized_answers += (code.empty() || code[0] == '4') ? 1 : 0;
    }
    for (int i = 0; i < 20; ++i) {  // the half-open connections are still there
      const auto t0 = std::chrono::steady_clock::now();
      const HttpReply r = http_request(http_port, "GET", "/metrics");
      latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      fast_answers += r.status == 200 ? 1 : 0;
      local_metrics = r.body;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    for (int fd : half_open) close(fd);
  };
  const Result r = run(s);
  EXPECT_NE(remote_code,
            "200");  // curl: 000 = no HTTP answer (the connection was closed at accept)
  EXPECT_EQ(fast_answers, 20);
  EXPECT_EQ(garbage_answers, 50);
  EXPECT_EQ(oversized_answers, 10);
  std::sort(latencies_ms.begin(), latencies_ms.end());
  ASSERT_FALSE(latencies_ms.empty());
  EXPECT_LT(latencies_ms.back(), 1000.0);
  std::cerr << "GET /metrics under abuse: median " << latencies_ms[latencies_ms.size() / 2]
            << " ms, max " << latencies_ms.back() << " ms; remote client got '" << remote_code
            << "'\n";
  const auto prom = rtpnode::test::check_prometheus(local_metrics);
  EXPECT_TRUE(prom.problems.empty());
  EXPECT_GE(prom.samples.count("rtpnode_http_refused_total")
                ? prom.samples.at("rtpnode_http_refused_total")
                : 0.0,
            1.0);
  expect_clean_stats(r);  // 0 underruns, nothing late or lost: audio was not disturbed
}

TEST(System, ControlOnOneSourceLeavesTheOtherSampleExact) {
  // Issue #4: source A (L16 48 kHz, routed left) plays while, over HTTP, source B (PCMU, routed
  // right) is muted, unmuted, flushed and turned down, source C joins B's port and leaves with
  // BYE, and B leaves with BYE. A's captured samples must be exactly what it sent.
  Audio a;
  a.rate = 48000;
  a.channels = 1;
  for (const char* f : {"Front_Center.wav", "Front_Left.wav", "Front_Right.wav", "Rear_Center.wav",
                        "Rear_Left.wav"}) {
    const Audio part = load_recording(std::string(kAlsaDir) + f);
    a.samples.insert(a.samples.end(), part.samples.begin(), part.samples.end());
  }
  const int port_b = free_udp_port();
  const std::string events = test_dir() + "/events.jsonl";
  Scenario s;
  s.input = a;
  s.send_args = {"--codec", "l16", "--pt", "96", "--ssrc", "167772161"};  // 0x0a000001
  s.http = true;
  std::vector<int> codes;
  s.during_http = [&](int http_port) {
    codes.clear();  // the last attempt's answers (run() may run the scenario again)
    const std::string dir = test_dir();
    const std::string speech = std::string(kAsteriskDir) + "agent-loggedoff.wav";
    const std::string dest = "127.0.0.1:" + std::to_string(port_b);
    const auto t0 = std::chrono::steady_clock::now();
    Process b(
        {RTPSEND_BIN, speech, "--dest", dest, "--codec", "pcmu", "--loop", "--duration", "5s"},
        dir + "/rtpsend_b.log");
    auto at = [&](double sec) {
      std::this_thread::sleep_until(t0 + std::chrono::milliseconds(static_cast<int>(sec * 1000)));
    };
    auto post = [&](const std::string& path) {
      codes.push_back(http_request(http_port, "POST", path).status);
    };
    const std::string sel = "/sources/port:" + std::to_string(port_b);
    at(1.0);
    post(sel + "/mute");
    at(2.2);
    post(sel + "/unmute");
    at(2.7);
    post(sel + "/flush");
    at(3.1);
    post(sel + "/gain?value=-6dB");
    at(3.3);
    Process c({RTPSEND_BIN, speech, "--dest", dest, "--codec", "pcmu"},
              dir + "/rtpsend_c.log");  // 1.5 s, then BYE
    EXPECT_EQ(c.wait(std::chrono::seconds(10)), std::optional<int>(0)) << c.log();
    EXPECT_EQ(b.wait(std::chrono::seconds(10)), std::optional<int>(0)) << b.log();
  };
  s.node_args = {"--payload",   "96=l16/48000/1",
                 "--route",     "ssrc:0x0a000001=L",
                 "--listen",    "127.0.0.1:" + std::to_string(port_b),
                 "--route",     "port:" + std::to_string(port_b) + "=R",
                 "--event-log", events};
  s.after_send = [&](int) { std::this_thread::sleep_for(std::chrono::milliseconds(500)); };
  const Result r = run(s);
  for (int code : codes) EXPECT_EQ(code, 200);
  EXPECT_EQ(codes.size(), 4u);

  // A is on the left alone: compare that channel, sample for sample.
  Audio left, right;
  left.rate = right.rate = r.capture.rate;
  left.channels = right.channels = 1;
  for (std::size_t f = 0; f < r.capture.frames(); ++f) {
    left.samples.push_back(r.capture.samples[2 * f]);
    right.samples.push_back(r.capture.samples[2 * f + 1]);
  }
  Audio expected = a;
  for (std::size_t k = 0; k + 1 < 240; ++k)
    expected.samples[k] *= static_cast<float>(k + 1) / 240.0f;  // join fade
  const ExactMatch m = match_exact(left, expected, kPeriod);
  EXPECT_EQ(m.mismatched_frames, 0u) << r.node_log;
  std::cerr << "source A on the left: " << m.matched_frames << " of " << expected.frames()
            << " frames exact, " << m.realignments << " realignments\n";
  const std::size_t lost_to_xruns =
      static_cast<std::size_t>(m.realignments) * kPeriod + m.silent_gap_frames;
  EXPECT_GE(m.matched_frames + lost_to_xruns + 256, expected.frames());
  // B and C were heard on the right, and the mute silenced it exactly for about a second.
  std::size_t longest_zero = 0, run_len = 0, loud = 0;
  for (float v : right.samples) {
    run_len = v == 0.0f ? run_len + 1 : 0;
    longest_zero = std::max(longest_zero, run_len);
    loud += std::fabs(v) > 0.01f ? 1 : 0;
  }
  EXPECT_GT(loud, 48000u);
  EXPECT_GE(longest_zero, static_cast<std::size_t>(0.9 * 48000)) << "mute 1.0 s .. unmute 2.2 s";
  // The event log tells the story: three joins, the four control changes, three leaves with
  // BYE, each drained.
  std::ifstream in(events);
  std::map<std::string, int> kinds;
  std::vector<std::string> actions;
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line);
    EXPECT_TRUE(e.contains("time") && e.contains("uptime_s"));
    ++kinds[e["event"].get<std::string>()];
    if (e["event"] == "control") actions.push_back(e["action"]);
  }
  EXPECT_EQ(kinds["source_joined"], 3);
  EXPECT_EQ(kinds["source_left"], 3);
  EXPECT_EQ(kinds["source_drained"], 3);
  EXPECT_EQ(actions, (std::vector<std::string>{"mute", "unmute", "flush", "gain"}));
  int flushes = 0;
  for (const auto& src : r.stats["sources"]) {
    flushes += src.value("flushes", 0);
    if (src["port"].get<int>() != port_b) {
      EXPECT_EQ(src.value("underruns", -1), 0);
    }
  }
  EXPECT_EQ(flushes, 1);
}

TEST(System, AdaptiveLatencyTracksInjectedJitterWithoutUnderruns) {
  // --latency auto (the default) with 0-30 ms of injected jitter: the target settles near the
  // jitter's 99 % quantile, packets play at that delay, and nothing underruns.
  Scenario s;
  s.input = stereo_recording();
  s.send_seconds = 10;
  s.latency = "auto";
  s.drift = "on";  // the defaults
  s.node_args = {"--payload", "96=opus/48000/2"};
  s.send_args = {"--codec", "opus",   "--pt", "96",       "--channels",
                 "2",       "--seed", "3",    "--jitter", "uniform:0-30ms"};
  const Result r = run(s);
  const json& src = only_source(r);
  const int received = src.value("packets_received", 0);
  EXPECT_GT(received, 400);
  EXPECT_EQ(src.value("underruns", -1), 0) << r.stats.dump(2);
  EXPECT_LE(src.value("packets_late", 1000), received / 100) << r.stats.dump(2);
  const double target = src.value("target_delay_ms", 0.0),
               delay = src.value("playout_delay_ms", 0.0);
  EXPECT_GE(target, 25.0) << r.stats.dump(2);  // covers the 30 ms of jitter (plus VM noise)
  EXPECT_LE(target, 80.0) << r.stats.dump(2);
  EXPECT_NEAR(delay, target, 15.0) << r.stats.dump(2);
  EXPECT_EQ(src.value("latency_mode", ""), "auto");
}

TEST(System, MusicStreamStartsAtItsTargetInsteadOfTrimmingDownToIt) {
  // Issue #18: a new stream was anchored at the 60 ms start delay and then trimmed down to its
  // target by playing fast: 1 % (17 cents) for 5-10 s, or with --profile music 0.1 % for most of
  // a minute (the issue measured the capture's lag drifting 884 frames in 5 s). Now the audio
  // beyond the target plus the measured jitter is dropped before the stream's first frame plays,
  // so from the first second on the playout delay is at its target (a 20 ms floor: this VM's
  // stalls would make a 1 ms loopback target expand, which is not what is tested here).
  Scenario s;
  s.input = stereo_recording();
  s.send_seconds = 6;
  s.latency = "auto";
  s.drift = "on";
  s.sample_stats = true;
  s.node_args = {"--payload", "97=L16/48000/2", "--profile", "music", "--min-latency", "20ms"};
  s.send_args = {"--codec", "l16", "--pt", "97"};
  const Result r = run(s);
  const json& src = only_source(r);
  // 60 ms minus the 20 ms floor and ~1 ms of loopback jitter were never heard.
  EXPECT_GE(src.value("frames_start_skipped", 0), 48 * 30) << r.stats.dump(2);
  EXPECT_LE(src.value("frames_start_skipped", 0), 48 * 45) << r.stats.dump(2);
  int checked = 0;
  for (const auto& [t, j] : r.series) {
    if (t < 1.0 || j["sources"].size() != 1) continue;
    const json& x = j["sources"][0];
    if (x.value("expansions", 0) > 0) break;  // a VM stall raised the delay: not the start
    const double delay = x.value("playout_delay_ms", 0.0), target = x.value("target_delay_ms", 0.0);
    std::printf("t %.1f s: playout delay %.2f ms, target %.2f ms, speed %.6f\n", t, delay, target,
                x.value("speed", 0.0));
    EXPECT_NEAR(delay, target, 3.0) << j.dump(2);
    // Music: never more than 0.1 % off (plus what drift compensation may add; none here).
    EXPECT_NEAR(x.value("speed", 0.0), 1.0, 0.0011) << j.dump(2);
    ++checked;
  }
  EXPECT_GE(checked, 3) << r.stats.dump(2);
}

TEST(System, SenderClockSkewOf500PpmIsCompensatedForTwoMinutes) {
  // Issue #5: rtpsend's clock runs 500 ppm fast (audio leaves 0.05 % faster than real time, RTP
  // time advances nominally). rtpnode with its defaults (adaptive, drift compensation) must hold
  // the delay at its target, estimate the drift, and never underrun.
  Scenario s;
  s.input = stereo_recording();
  s.send_seconds = 120;
  s.latency = "auto";
  s.drift = "on";
  s.sample_stats = true;
  // Two minutes on this VM often hold a stall; one that froze the sender for 50 ms froze rtpnode
  // and JACK too (xruns), and an underrun then says nothing about drift: run again.
  s.max_sender_stall_ms = 50.0;
  // A 20 ms floor under the target: on loopback the target would be 1 ms, and then any stall of
  // this VM's loop thread longer than the render lead underruns, which is not what is tested here.
  s.node_args = {"--payload", "97=L16/48000/2", "--min-latency", "20ms"};
  s.send_args = {"--codec", "l16", "--pt", "97", "--skew-ppm", "500"};
  const Result r = run(s);
  const json& src = only_source(r);
  // Underruns: none may happen except right after a device xrun (the JACK dummy itself stalled
  // with the VM; everything queued then arrives late at once). An underrun counted in a sample
  // whose xrun count rose in that or the previous sample is attributed to the xrun and reported.
  int unexplained = 0, attributed = 0;
  {
    std::uint64_t prev_u = 0, prev_x = 0;
    bool xrun_recent = false;
    auto step = [&](const json& j) {
      if (j["sources"].size() != 1) return;
      const std::uint64_t u = j["sources"][0].value("underruns", 0ull),
                          x = j["node"].value("xruns", 0ull);
      const bool xrun_now = x > prev_x;
      if (u > prev_u)
        (xrun_now || xrun_recent ? attributed : unexplained) += static_cast<int>(u - prev_u);
      xrun_recent = xrun_now;
      prev_u = u;
      prev_x = x;
    };
    for (const auto& [t, j] : r.series) step(j);
    step(r.stats);
  }
  std::printf("underruns: %d after a device xrun (xruns %llu), %d otherwise\n", attributed,
              static_cast<unsigned long long>(r.stats["node"].value("xruns", 0ull)), unexplained);
  EXPECT_EQ(unexplained, 0) << r.stats.dump(2);
  EXPECT_LE(attributed, r.stats["node"].value("xruns", 0)) << r.stats.dump(2);
  EXPECT_NEAR(src.value("drift_ppm", 0.0), 500.0, 5.0) << r.stats.dump(2);

  // From 30 s on, every per-second sample: playout delay within 2 ms of the target. Samples after
  // a VM stall (expansion, late packet, underrun or device xrun since the previous sample) are
  // reported, not judged, until the delay is back within 2 ms: the stall raised the delay (on
  // purpose for expansions, #3) and the loop then brings it back.
  int judged = 0, off = 0;
  double worst = 0, e2e_at_30 = 0, e2e_last = 0;
  std::uint64_t prev_events = 0;
  double recovering_since = -1, last_speed = 0;
  for (const auto& [t, j] : r.series) {
    if (j["sources"].size() != 1) continue;
    const json& x = j["sources"][0];
    if (t >= 30 && e2e_at_30 == 0) e2e_at_30 = x.value("arrival_to_dac_ms", 0.0);
    e2e_last = x.value("arrival_to_dac_ms", 0.0);
    // A device xrun (the JACK dummy stalled with the VM) delays everything queued by the stall;
    // the speed loop then brings the delay back at up to 10 ms/s.
    const std::uint64_t events = x.value("expansions", 0ull) + x.value("packets_late", 0ull) +
                                 x.value("underruns", 0ull) + j["node"].value("xruns", 0ull);
    if (events != prev_events) recovering_since = t;
    prev_events = events;
    const double e = x.value("playout_delay_ms", 0.0) - x.value("target_delay_ms", 0.0);
    if (recovering_since >= 0) {
      if (std::abs(e) > 2.0) {
        // Back at 10 ms/s: even a 100 ms stall is closed within 10 s.
        EXPECT_LE(t - recovering_since, 10.0)
            << "delay " << e << " ms off target " << t - recovering_since << " s after a stall";
        continue;
      }
      recovering_since = -1;
    }
    if (t < 30) continue;
    ++judged;
    last_speed = x.value("speed", 0.0);
    worst = std::max(worst, std::abs(e));
    if (std::abs(e) > 2.0) {
      ++off;
      ADD_FAILURE() << "at " << t << " s: delay " << x.value("playout_delay_ms", 0.0)
                    << " ms, target " << x.value("target_delay_ms", 0.0) << " ms";
    }
  }
  std::printf(
      "skew 500 ppm: %d samples judged, worst |delay - target| %.2f ms, drift %.2f ppm, speed "
      "%.6f, "
      "arrival->DAC %.2f ms at 30 s and %.2f ms at the end\n",
      judged, worst, src.value("drift_ppm", 0.0), src.value("speed", 0.0), e2e_at_30, e2e_last);
  EXPECT_GE(judged, 60);
  EXPECT_EQ(off, 0);
  // The resampler runs the sender's 500 ppm fast (speed in the last settled sample; the final
  // stats may catch the loop closing a stall).
  EXPECT_NEAR(last_speed, 1.0005, 100e-6);
  // Independent of our own delay measure: the measured arrival -> DAC latency does not creep
  // (at a fixed speed of 1, 500 ppm would add 45 ms over these 90 s).
  EXPECT_NEAR(e2e_last, e2e_at_30, 2.0);
}

namespace {

/// Lag (frames, sub-frame by parabolic interpolation) at which channel 1 of `a` best matches
/// channel 0 over frames [from, from + len): > 0 means channel 1 plays later.
double channel_lag(const Audio& a, std::size_t from, std::size_t len, int max_lag) {
  auto at = [&](std::size_t f, int c) {
    return f < a.frames() ? static_cast<double>(a.samples[f * 2 + static_cast<std::size_t>(c)])
                          : 0.0;
  };
  std::vector<double> corr(static_cast<std::size_t>(2 * max_lag + 1));
  for (int lag = -max_lag; lag <= max_lag; ++lag) {
    double sum = 0;
    for (std::size_t i = from; i < from + len; ++i) {
      const auto j = static_cast<std::ptrdiff_t>(i) + lag;
      if (j >= 0) sum += at(i, 0) * at(static_cast<std::size_t>(j), 1);
    }
    corr[static_cast<std::size_t>(lag + max_lag)] = sum;
  }
  const auto best =
      static_cast<std::size_t>(std::max_element(corr.begin(), corr.end()) - corr.begin());
  double frac = 0;
  if (best > 0 && best + 1 < corr.size()) {
    const double y0 = corr[best - 1], y1 = corr[best], y2 = corr[best + 1];
    const double d = y0 - 2 * y1 + y2;
    if (d != 0) frac = 0.5 * (y0 - y2) / d;
  }
  return static_cast<double>(best) - max_lag + frac;
}

/// Two senders of one live feed sharing this machine's NTP clock (issue #4 test 1, issue #20).
struct TwoSenders {
  std::string second_codec = "pcmu";  ///< "pcmu" (8 kHz) or "l16" (48 kHz, as the first)
  double stagger_s = 2.0;             ///< the second sender starts this long after the first
  std::string offset;                 ///< --offset of the second source ("" = none)
  int period = kPeriod;
  /// rtpnode's own defaults (adaptive latency, drift compensation): how a user runs it. False:
  /// the fixed latency and drift off of the content tests.
  bool node_defaults = false;
  double freeze_device_at_s = -1;  ///< see Scenario
  double freeze_loop_at_s = -1;    ///< see Scenario
  double stop_process_at_s = -1;   ///< see Scenario
};

/// The first sender streams L16 48 kHz (routed left), the second `c.second_codec` (routed right);
/// returns the measured lag of the right channel behind the left (frames) and the final stats.
/// `mid_stats` (optional): the stats sampled about 7 s after the first sender started, while
/// both play; `early_stats` (optional, with mid_stats): about 4 s after (before a freeze).
std::pair<double, json> two_senders_on_one_ntp_clock(const TwoSenders& c, json* mid_stats = nullptr,
                                                     json* early_stats = nullptr) {
  const Audio speech = speech_8k();
  Scenario s;
  // The 48 kHz copy must loop with the same period as the 8 kHz file: exactly 6 x its frames
  // (the resampler's tail is flushed with padding, then cut there).
  Audio padded = speech;
  padded.samples.resize(padded.samples.size() + 400, 0.0f);
  s.input = resample(padded, 48000, 10);
  s.input.samples.resize(speech.frames() * 6);
  s.send_seconds = 9;
  s.period = c.period;
  s.freeze_device_at_s = c.freeze_device_at_s;
  s.freeze_loop_at_s = c.freeze_loop_at_s;
  s.stop_process_at_s = c.stop_process_at_s;
  s.sample_stats = mid_stats != nullptr;
  if (c.node_defaults) {
    s.latency = "auto";
    s.drift = "on";
  }
  const double epoch =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() +
      0.5;
  char epoch_text[32];
  std::snprintf(epoch_text, sizeof epoch_text, "%.6f", epoch);
  int port2 = free_udp_port();
  const std::string dir = test_dir();
  const std::string input48 = dir + "/input48.wav";
  write_wav16(input48, s.input);
  s.node_args = {"--payload", "97=L16/48000/1", "--listen", "127.0.0.1:" + std::to_string(port2),
                 "--route",   "ssrc:0x1111=L",  "--route",  "port:" + std::to_string(port2) + "=R"};
  if (!c.offset.empty())
    s.node_args.insert(s.node_args.end(),
                       {"--offset", "port:" + std::to_string(port2) + "=" + c.offset});
  s.send_args = {"--codec",         "l16",  "--pt",         "97",
                 "--ssrc",          "4369", "--live-epoch", epoch_text,
                 "--rtcp-interval", "1s"};
  s.during = [&](int) {
    std::this_thread::sleep_for(std::chrono::duration<double>(c.stagger_s));
    const bool l16 = c.second_codec == "l16";
    char duration[32];
    std::snprintf(duration, sizeof duration, "%.3fs", s.send_seconds - c.stagger_s - 0.5);
    std::vector<std::string> argv{RTPSEND_BIN,
                                  l16 ? input48 : std::string(kAsteriskDir) + "agent-loggedoff.wav",
                                  "--dest",
                                  "127.0.0.1:" + std::to_string(port2),
                                  "--codec",
                                  l16 ? "l16" : "pcmu",
                                  "--ssrc",
                                  "8738",
                                  "--live-epoch",
                                  epoch_text,
                                  "--loop",
                                  "--duration",
                                  duration,
                                  "--rtcp-interval",
                                  "1s"};
    if (l16) argv.insert(argv.end(), {"--pt", "97"});
    Process second(argv, dir + "/rtpsend2.log");
    EXPECT_EQ(second.wait(std::chrono::seconds(20)), std::optional<int>(0)) << second.log();
  };
  const Result r = run(s);
  // The capture starts about 0.7 s before the first sender; the second plays from at most
  // 0.7 + 2 + 0.3 (delay) s, placed; a device freeze comes at most 4.5 s after the start.
  // Compare 2 s from 6 s into the capture (both play until about 9 s).
  const double lag = channel_lag(r.capture, 6 * 48000, 2 * 48000, 1500);
  if (mid_stats)
    for (const auto& [t, j] : r.series) {
      if (t <= 7.5) *mid_stats = j;
      if (early_stats && t <= 4.4) *early_stats = j;
      if (getenv("RTPNODE_SYNC_TRACE"))
        for (const json& src : j["sources"])
          std::printf(
              "  t=%.1f ssrc %u err %.4f ms speed %.6f I %.1f ppm drift %.1f ppm c2d %.2f ms "
              "a2d %.2f ms\n",
              t, src.value("ssrc", 0u), src.value("sync_error_ms", 0.0), src.value("speed", 0.0),
              src.value("drift_integral_ppm", 0.0), src.value("drift_ppm", 0.0),
              src.value("capture_to_dac_ms", 0.0), src.value("arrival_to_dac_ms", 0.0));
    }
  return {lag, r.stats};
}

}  // namespace

TEST(System, SendersSharingAnNtpClockPlayInSyncAcrossClockRates) {
  const auto [lag, stats] = two_senders_on_one_ntp_clock({});
  std::printf(
      "L16 48 kHz vs PCMU 8 kHz on one NTP clock: right channel %.2f frames behind the left\n",
      lag);
  EXPECT_NEAR(lag, 0.0, 1.0) << stats.dump(2);
  ASSERT_EQ(stats["sources"].size(), 2u) << stats.dump(2);
  for (const json& src : stats["sources"]) {
    EXPECT_GT(src.value("sender_reports", 0), 0) << src.dump(2);
    EXPECT_EQ(src.value("underruns", -1), 0) << src.dump(2);
  }
}

TEST(System, OffsetOfTenMillisecondsIsExactly480Frames) {
  const auto [lag, stats] = two_senders_on_one_ntp_clock({.offset = "+10ms"});
  std::printf("with --offset port:N=+10ms: right channel %.2f frames behind the left\n", lag);
  EXPECT_NEAR(lag, 480.0, 1.0) << stats.dump(2);
}

// Issue #20: sync precision at 256- and 1024-frame periods, with the second sender started
// together with the first, 0.137 s later (mid-packet, mid-period) or 2 s later, PCMU 8 kHz
// (resampled) or L16 48 kHz; rtpnode with its default latency and drift settings. The right
// channel must play exactly the 10 ms offset behind the left: 480 frames +-1.
struct SyncCase {
  int period;
  double stagger_s;
  const char* second_codec;
  bool freeze = false;        ///< stop the JACK server for 50 ms in the middle (a device xrun)
  bool stall_loop = false;    ///< stop rtpnode's loop thread for 150 ms in the middle
  bool stop_process = false;  ///< SIGSTOP rtpnode for 150 ms in the middle, then SIGCONT
};

class SyncPrecision : public ::testing::TestWithParam<SyncCase> {};

TEST_P(SyncPrecision, TenMillisecondOffsetIs480FramesWithinOne) {
  const SyncCase& c = GetParam();
  TwoSenders t;
  t.second_codec = c.second_codec;
  t.stagger_s = c.stagger_s;
  t.offset = "+10ms";
  t.period = c.period;
  t.node_defaults = true;
  if (c.freeze) t.freeze_device_at_s = 4.5;
  if (c.stall_loop) t.freeze_loop_at_s = 4.5;
  if (c.stop_process) t.stop_process_at_s = 4.5;
  json mid, early;
  const auto [lag, stats] = two_senders_on_one_ntp_clock(t, &mid, &early);
  double sync_error_ms[2] = {0, 0};
  for (std::size_t i = 0; i < 2 && i < mid["sources"].size(); ++i)
    sync_error_ms[i] = mid["sources"][i].value("sync_error_ms", 0.0);
  std::printf(
      "sync: period %d, %s started %.3f s later%s: lag %.2f frames (goal 480); sync_error_ms "
      "%.4f / %.4f; xruns %llu\n",
      c.period, c.second_codec, c.stagger_s,
      c.freeze ? ", device frozen 50 ms"
               : (c.stall_loop ? ", loop stalled 150 ms"
                               : (c.stop_process ? ", process stopped 150 ms" : "")),
      lag, sync_error_ms[0], sync_error_ms[1],
      static_cast<unsigned long long>(stats["node"].value("xruns", 0ull)));
  ::testing::Test::RecordProperty("lag_frames", std::to_string(lag));
  EXPECT_NEAR(lag, 480.0, 1.0) << stats.dump(2);
  // While both play, both are on the timeline.
  ASSERT_EQ(mid["sources"].size(), 2u) << mid.dump(2);
  for (const json& src : mid["sources"]) EXPECT_TRUE(src.value("synced", false)) << src.dump(2);
  if (c.freeze || c.stall_loop || c.stop_process) {
    // Issue #15: 2.5 s after the stall, each source's capture -> DAC delay is back within 2 ms
    // of what it was before (a device stall used to leave it raised by the stall for good).
    ASSERT_EQ(early["sources"].size(), 2u) << early.dump(2);
    for (std::size_t i = 0; i < 2; ++i) {
      const double before = early["sources"][i].value("capture_to_dac_ms", 0.0);
      const double after = mid["sources"][i].value("capture_to_dac_ms", 0.0);
      std::printf("  source %zu: capture -> DAC %.2f ms before, %.2f ms after\n", i, before, after);
      EXPECT_NEAR(after, before, 2.0) << mid.dump(2);
    }
  }
}

void PrintTo(const SyncCase& c, std::ostream* os) {
  *os << c.second_codec << " period " << c.period << " stagger " << c.stagger_s
      << (c.freeze ? " xrun" : "") << (c.stall_loop ? " loop stall" : "")
      << (c.stop_process ? " process stopped" : "");
}

std::string sync_case_name(const ::testing::TestParamInfo<SyncCase>& i) {
  const SyncCase& c = i.param;
  return std::string(c.second_codec) + "_period" + std::to_string(c.period) + "_stagger" +
         std::to_string(static_cast<int>(std::lround(c.stagger_s * 1000))) + "ms" +
         (c.freeze ? "_xrun" : "") + (c.stall_loop ? "_loopstall" : "") +
         (c.stop_process ? "_sigstop" : "");
}

INSTANTIATE_TEST_SUITE_P(Sync, SyncPrecision,
                         ::testing::Values(SyncCase{1024, 0.0, "pcmu"},
                                           SyncCase{1024, 0.137, "pcmu"},
                                           SyncCase{1024, 2.0, "pcmu"}, SyncCase{1024, 0.0, "l16"},
                                           SyncCase{1024, 0.137, "l16"}, SyncCase{1024, 2.0, "l16"},
                                           SyncCase{256, 0.0, "pcmu"}, SyncCase{256, 0.137, "pcmu"},
                                           SyncCase{256, 2.0, "pcmu"}, SyncCase{256, 0.0, "l16"},
                                           SyncCase{256, 0.137, "l16"}, SyncCase{256, 2.0, "l16"},
                                           SyncCase{1024, 0.137, "pcmu", true},
                                           SyncCase{256, 0.137, "pcmu", true},
                                           SyncCase{1024, 0.137, "pcmu", false, true},
                                           SyncCase{1024, 0.137, "pcmu", false, false, true}),
                         sync_case_name);

namespace {

/// Power of `a`'s channel `c` at `hz` over frames [from, from + len), Hann-windowed (Goertzel),
/// normalised so that a full-scale sine gives 1 (a sine of amplitude A gives A squared).
double tone_power(const Audio& a, int c, std::size_t from, std::size_t len, double hz) {
  const double w = 2.0 * M_PI * hz / a.rate, coeff = 2.0 * std::cos(w);
  double s1 = 0, s2 = 0, window_sum = 0;
  for (std::size_t i = 0; i < len; ++i) {
    const double hann =
        0.5 - 0.5 * std::cos(2.0 * M_PI * static_cast<double>(i) / static_cast<double>(len - 1));
    window_sum += hann;
    const double x =
        a.samples[(from + i) * static_cast<std::size_t>(a.channels) + static_cast<std::size_t>(c)] *
        hann;
    const double s0 = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const double power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return 4.0 * power / (window_sum * window_sum);
}

}  // namespace

TEST(System, SixteenSinesEachPlayInExactlyTheirRoutedChannel) {
  // Issue #4 test 3: 16 senders on one port (16 SSRCs), each a sine of its own frequency,
  // each routed by its SSRC to one of 16 device channels. Every channel must hold its own
  // frequency at the sender's level and none of the 15 others (all below -80 dB), with 0
  // underruns. L16 at 48 kHz: with PCMU the test measured the codec, not the routing (µ-law is a
  // memoryless non-linearity, so a sine's aliased harmonics land on every other integer
  // frequency, at -50 to -60 dB).
  constexpr int kSources = 16;
  // 353 ... 3353 Hz: odd and not multiples of 5, so 16-bit rounding of the sine repeats only every
  // second and spreads its error over 1 Hz lines instead of piling it up on a 50 Hz grid.
  auto hz = [](int i) { return 353.0 + 200.0 * i; };
  auto ssrc = [](int i) { return 0x1000 + i; };
  // One run: 16 rtpsends, the node, a 16-channel capture. Its stats and the senders' reports
  // say whether the machine kept the clean-run precondition.
  auto run_once = [&](int attempt) {
    const std::string dir = test_dir() + "/attempt" + std::to_string(attempt);
    std::filesystem::create_directories(dir);
    JackServer jack(dir, kPeriod, kSources);
    const int port = free_udp_port();
    std::vector<std::string> node_args{RTPNODE_BIN,
                                       "--host-api",
                                       "jack",
                                       "--client-name",
                                       "rtpn",
                                       "--channels",
                                       "16",
                                       "--payload",
                                       "97=L16/48000/1",
                                       "--listen",
                                       "127.0.0.1:" + std::to_string(port),
                                       "--stats-json",
                                       dir + "/stats.json",
                                       "--stats-interval",
                                       "1s",
                                       "--duration",
                                       "10s"};
    for (int i = 0; i < kSources; ++i) {
      char sel[64];
      std::snprintf(sel, sizeof sel, "ssrc:0x%x=%d", ssrc(i), i + 1);
      node_args.insert(node_args.end(), {"--route", sel});
    }
    Process node(node_args, dir + "/rtpnode.log");
    EXPECT_TRUE(jack.wait_for_port("rtpn:out_15")) << node.log();
    std::vector<std::string> capture_args{"jack_capture", "-d",         "9",
                                          "--daemon",     "--channels", "16"};
    for (int i = 0; i < kSources; ++i)
      capture_args.insert(capture_args.end(), {"--port", "rtpn:out_" + std::to_string(i)});
    capture_args.push_back(dir + "/capture.wav");
    Process capture(capture_args, dir + "/capture.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    std::vector<std::unique_ptr<Process>> senders;
    for (int i = 0; i < kSources; ++i)
      senders.push_back(std::make_unique<Process>(
          std::vector<std::string>{RTPSEND_BIN, "--tone", std::to_string(static_cast<int>(hz(i))),
                                   "--codec", "l16", "--pt", "97", "--channels", "1", "--ssrc",
                                   std::to_string(ssrc(i)), "--duration", "6s", "--dest",
                                   "127.0.0.1:" + std::to_string(port), "--stats-json",
                                   dir + "/sent" + std::to_string(i) + ".json"},
          dir + "/rtpsend" + std::to_string(i) + ".log"));
    for (auto& p : senders)
      EXPECT_EQ(p->wait(std::chrono::seconds(20)), std::optional<int>(0)) << p->log();
    EXPECT_TRUE(capture.wait(std::chrono::seconds(20)).has_value()) << capture.log();
    EXPECT_EQ(node.wait(std::chrono::seconds(15)), std::optional<int>(0)) << node.log();
    double send_error_ms = 0;
    for (int i = 0; i < kSources; ++i) {
      json sent;
      std::ifstream(dir + "/sent" + std::to_string(i) + ".json") >> sent;
      send_error_ms =
          std::max(send_error_ms, sent.value("/send_error_us/max"_json_pointer, 0.0) / 1000.0);
    }
    return std::make_pair(dir, send_error_ms);
  };
  std::string dir;
  json stats;
  for (int attempt = 1;; ++attempt) {
    double send_error_ms = 0;
    std::tie(dir, send_error_ms) = run_once(attempt);
    stats = json();
    std::ifstream(dir + "/stats.json") >> stats;
    if (attempt == 3 || !stats.is_object() || !stats.contains("node")) break;
    int underruns = 0;
    for (const json& src : stats["sources"]) underruns += src.value("underruns", 0);
    const json& n = stats["node"];
    const double late_ms = n.value("loop_lateness_max_ms", 0.0);
    const double lead_ms = n.value("render_lead_ms", 0.0);
    // An underrun is this test's failure only on a machine that kept pace: 16 senders, the
    // node and the capture on 2 cores (under ASan a source once ran dry for 63 ms with the
    // node's loop and the device on time, 2026-12-02: a sender starved of CPU, the likeliest
    // cause, was not measured then; it is now).
    if (underruns > 0 && (send_error_ms > 10.0 || n.value("xruns", 0) > 0 ||
                          late_ms > lead_ms - 1000.0 * kPeriod / 48000.0)) {
      std::cerr << "note: " << underruns << " underrun(s) with a sender late by up to "
                << send_error_ms << " ms, " << n.value("xruns", 0)
                << " JACK xrun(s), loop late by up to " << late_ms << " ms (lead " << lead_ms
                << " ms): VM scheduling; running again\n";
      wait_for_quiet_machine();
      continue;
    }
    if (underruns > 0)
      std::printf("underruns on a machine that kept pace: senders late by up to %.1f ms\n",
                  send_error_ms);
    break;
  }
  int sources = 0;
  for (const json& src : stats["sources"]) {
    ++sources;
    EXPECT_EQ(src.value("underruns", -1), 0) << src.dump(2);
  }
  EXPECT_EQ(sources, kSources) << stats.dump(2);
  EXPECT_EQ(stats["node"].value("sources_refused", -1), 0);

  const Audio cap = read_wav(dir + "/capture.wav");
  ASSERT_EQ(cap.channels, kSources);
  // The window where every channel plays: after the latest start, before the earliest end.
  std::size_t first = 0, last = cap.frames();
  for (int c = 0; c < kSources; ++c) {
    std::size_t on = cap.frames(), off = 0;
    for (std::size_t f = 0; f < cap.frames(); ++f)
      if (std::abs(cap.samples[f * kSources + static_cast<std::size_t>(c)]) > 0.25f) {
        on = std::min(on, f);
        off = f;
      }
    first = std::max(first, on);
    last = std::min(last, off);
  }
  ASSERT_GT(last, first + 2 * 48000) << "fewer than 2 s with all 16 playing";
  const std::size_t from = (first + last) / 2 - 24000, len = 48000;  // 1 s in the middle
  double worst_leak_db = -1000;
  for (int c = 0; c < kSources; ++c) {
    const double own = tone_power(cap, c, from, len, hz(c));
    EXPECT_NEAR(std::sqrt(own), 0.5, 0.05)
        << "channel " << c + 1 << ": rtpsend's -6 dBFS sine at " << hz(c) << " Hz";
    for (int j = 0; j < kSources; ++j) {
      if (j == c) continue;
      const double leak_db = 10.0 * std::log10(tone_power(cap, c, from, len, hz(j)) / own + 1e-30);
      worst_leak_db = std::max(worst_leak_db, leak_db);
      EXPECT_LT(leak_db, -80.0) << hz(j) << " Hz in channel " << c + 1;
    }
  }
  std::printf(
      "16 sines on 16 channels: each at its level, the other 15 frequencies at most %.1f dB in any "
      "channel\n",
      worst_leak_db);
}

TEST(System, MulticastGroupIsJoined) {
  LoopbackNamespace ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot create a network namespace here (needs root)";
  Scenario s;
  s.input = speech_8k();
  s.host = "239.255.12.34";
  s.netns = ns.name();
  s.send_args = {"--codec", "pcmu",  "--iface",
                 "lo",      "--ttl", "0"};  // sender's multicast interface chosen
  const Result r = run(s);
  const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
  expect_exact(r, resample(reference_decode(s.input, f, 160), 48000, 4), 1e-6f);
  expect_clean_stats(r);
}

// Issue #17: an SDP's a=source-filter (RFC 4570) joins the group source-specifically
// (RFC 4607): the named sender plays sample for sample; a filter naming another sender keeps
// the same stream out entirely.
TEST(System, SdpSourceFilterJoinsTheGroupOnlyForItsSender) {
  LoopbackNamespace ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot create a network namespace here (needs root)";
  for (const std::string sender : {"127.0.0.1", "127.0.0.2"}) {
    Scenario s;
    s.input = speech_8k();
    s.host = "239.255.12.35";
    s.netns = ns.name();
    s.send_args = {"--codec", "pcmu", "--iface", "lo", "--ttl", "0"};
    s.sdp = [&](int port) {
      return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=ssm\r\nc=IN IP4 239.255.12.35/0\r\n"
             "t=0 0\r\nm=audio " +
             std::to_string(port) + " RTP/AVP 0\r\na=source-filter: incl IN IP4 239.255.12.35 " +
             sender + "\r\n";
    };
    const Result r = run(s);
    EXPECT_NE(r.node_log.find("senders " + sender), std::string::npos) << r.node_log;
    if (sender == "127.0.0.1") {
      const PayloadFormat f{Codec::pcmu, 8000, 8000, 1};
      expect_exact(r, resample(reference_decode(s.input, f, 160), 48000, 4), 1e-6f);
      expect_clean_stats(r);
    } else {
      EXPECT_EQ(r.stats["sources"].size(), 0u) << r.stats.dump(2);
    }
  }
}

TEST(System, SigtermStopsCleanlyAndWritesFinalStats) {
  for (int sig : {SIGTERM, SIGINT}) {
    const std::string dir = test_dir() + "/sig" + std::to_string(sig);
    std::filesystem::create_directories(dir);
    JackServer jack(dir, kPeriod);
    Process node({RTPNODE_BIN, "--host-api", "jack", "--client-name", "rtpn", "--listen",
                  "127.0.0.1:" + std::to_string(free_udp_port()), "--stats-json",
                  dir + "/stats.json", "--stats-interval", "10s"},
                 dir + "/rtpnode.log");
    ASSERT_TRUE(jack.wait_for_port("rtpn:out_0")) << node.log();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    node.signal(sig);
    EXPECT_EQ(node.wait(std::chrono::seconds(5)), std::optional<int>(0)) << node.log();
    json stats;
    std::ifstream(dir + "/stats.json") >> stats;  // written at exit, not at an interval
    EXPECT_GT(stats["node"].value("callbacks", 0), 0) << node.log();
    EXPECT_NE(node.log().find("(final)"), std::string::npos);
  }
}

// Issue #16 finding 3: with its JACK server killed, rtpnode kept reporting an "active" source
// with 0 underruns, and SIGTERM then blocked in Pa_StopStream for PortAudio's 600 s timeout.
TEST(System, LostJackServerIsReportedAndSigtermStillExitsWithinTwoSeconds) {
  const std::string dir = test_dir();
  JackServer jack(dir, kPeriod, 2,
                  "rtpnode-test-killed");  // fixed: its slot is reclaimed next time
  const int port = free_udp_port();
  Process node({RTPNODE_BIN, "--host-api", "jack", "--client-name", "rtpn", "--listen",
                "127.0.0.1:" + std::to_string(port), "--stats-json", dir + "/stats.json",
                "--stats-interval", "200ms", "--event-log", dir + "/events.jsonl"},
               dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_0")) << node.log();
  Process sender({RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--duration", "5s", "--dest",
                  "127.0.0.1:" + std::to_string(port)},
                 dir + "/rtpsend.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  json before;
  std::ifstream(dir + "/stats.json") >> before;
  EXPECT_EQ(before["node"]["device_state"], "running") << before.dump(2);
  jack.kill_now();
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // > 500 ms without a callback
  json after;
  std::ifstream(dir + "/stats.json") >> after;
  EXPECT_EQ(after["node"]["device_state"], "stopped") << after.dump(2);
  EXPECT_EQ(after["node"]["device_up"], false);
  EXPECT_GE(after["node"]["device_reopen_failures"], 1);  // --device-retry on: it keeps trying
  const auto t0 = std::chrono::steady_clock::now();
  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(std::chrono::seconds(10)), std::optional<int>(0))
      << node.log();  // a stop that was asked for; --device-retry off exits 3 (below)
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_NE(node.log().find("audio device stopped"), std::string::npos) << node.log();
  EXPECT_NE(node.log().find("(final)"), std::string::npos)
      << node.log();  // final stats still written
  std::ifstream ev(dir + "/events.jsonl");
  int lost = 0;
  for (std::string line; std::getline(ev, line);)
    if (json::parse(line)["event"] == "device_lost") ++lost;
  EXPECT_EQ(lost, 1);
  sender.wait(std::chrono::seconds(10));
}

// Issue #15: with --device-retry off a lost device ends the process at once with status 3, for a
// service manager (Restart=on-failure) to start it again.
TEST(System, DeviceRetryOffExitsWithStatusThreeWhenTheServerDies) {
  const std::string dir = test_dir();
  JackServer jack(dir, kPeriod, 2, "rtpnode-test-killed");
  Process node({RTPNODE_BIN, "--host-api", "jack", "--client-name", "rtpn", "--listen",
                "127.0.0.1:" + std::to_string(free_udp_port()), "--device-retry", "off"},
               dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_0")) << node.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto t0 = std::chrono::steady_clock::now();
  jack.kill_now();
  EXPECT_EQ(node.wait(std::chrono::seconds(10)), std::optional<int>(3)) << node.log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));  // 500 ms to notice
  EXPECT_NE(node.log().find("--device-retry off: exiting"), std::string::npos) << node.log();
  jack.restart();  // JACK2 frees the dead server's registry slot when its name starts again
}

// Issue #15: the JACK server is killed under a playing node and started again, three times. Each
// time the node reopens it (backoff from 100 ms), audio is back within 2 s of the server, the
// source goes on (same SSRC, its counters continue), its arrival -> DAC delay is back within
// 2 ms of what it was, events and metrics count every loss and reopening, and the resident set
// does not grow with the cycles.
TEST(System, KilledJackServerStartedAgainPlaysWithinTwoSecondsEveryTime) {
  const std::string dir = test_dir();
  JackServer jack(dir, kPeriod, 2, "rtpnode-test-restarted");
  const int port = free_udp_port();
  Process node(
      {RTPNODE_BIN, "--host-api", "jack", "--client-name", "rtpn", "--listen",
       "127.0.0.1:" + std::to_string(port), "--latency", "60ms", "--stats-json",
       dir + "/stats.json", "--stats-interval", "100ms", "--event-log", dir + "/events.jsonl"},
      dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_0")) << node.log();
  Process sender({RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--duration", "40s", "--dest",
                  "127.0.0.1:" + std::to_string(port)},
                 dir + "/rtpsend.log");
  auto stats = [&] {
    json j;
    std::ifstream(dir + "/stats.json") >> j;
    return j;
  };
  auto mono_ns = [] {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  };
  std::this_thread::sleep_for(std::chrono::seconds(3));
  json before = stats();
  ASSERT_EQ(before["sources"].size(), 1u) << before.dump(2);
  const auto ssrc = before["sources"][0]["ssrc"];
  const double delay_before = before["sources"][0]["arrival_to_dac_ms"];
  long rss_first = 0;
  for (int cycle = 1; cycle <= 3; ++cycle) {
    const auto received_before = stats()["sources"][0]["packets_received"].get<long>();
    jack.kill_now();
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    jack.restart();
    const std::int64_t back_ns = mono_ns();
    ASSERT_TRUE(jack.wait_for_port("rtpn:out_0")) << node.log();
    JackProbe probe("rtpn:out_0", 4.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    probe.stop();
    // The first loud frame (the tone peaks near 0.5 after PCMU; silence is exactly 0).
    std::size_t first = probe.frames();
    for (std::size_t i = 0; i < probe.frames(); ++i)
      if (std::fabs(probe.samples()[i]) > 0.1f) {
        first = i;
        break;
      }
    ASSERT_LT(first, probe.frames()) << "no audio after restart " << cycle << "\n" << node.log();
    const double resumed_ms = static_cast<double>(probe.dac_ns(first) - back_ns) / 1e6;
    std::printf("cycle %d: audio at the DAC %.0f ms after the server was back\n", cycle,
                resumed_ms);
    EXPECT_LT(resumed_ms, 2000.0) << "cycle " << cycle;
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    const json now = stats();
    EXPECT_EQ(now["node"]["device_state"], "running") << now.dump(2);
    EXPECT_EQ(now["node"]["device_reopens"], cycle);
    ASSERT_EQ(now["sources"].size(), 1u) << now.dump(2);
    EXPECT_EQ(now["sources"][0]["ssrc"], ssrc);
    EXPECT_GT(now["sources"][0]["packets_received"].get<long>(), received_before + 100);
    const double delay_after = now["sources"][0]["arrival_to_dac_ms"];
    std::printf("cycle %d: arrival -> DAC %.2f ms (before the first loss %.2f ms)\n", cycle,
                delay_after, delay_before);
    EXPECT_NEAR(delay_after, delay_before, 2.0) << "cycle " << cycle;
    if (cycle == 1) rss_first = rss_kb(node.pid());
  }
  const long rss_last = rss_kb(node.pid());
  std::printf("RSS after the first reopening %ld kB, after the third %ld kB\n", rss_first,
              rss_last);
#if !defined(__SANITIZE_ADDRESS__)  // ASan's quarantine keeps freed memory resident
  EXPECT_LT(rss_last - rss_first, 2048);
#endif
  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(std::chrono::seconds(5)), std::optional<int>(0)) << node.log();
  std::ifstream ev(dir + "/events.jsonl");
  int lost = 0, reopened = 0;
  for (std::string line; std::getline(ev, line);) {
    const json e = json::parse(line);
    lost += e["event"] == "device_lost" ? 1 : 0;
    reopened += e["event"] == "device_reopened" ? 1 : 0;
  }
  EXPECT_EQ(lost, 3);
  EXPECT_EQ(reopened, 3);
  sender.signal(SIGTERM);
  sender.wait(std::chrono::seconds(5));
}

namespace {

/// The first JACK port whose name holds `part` (jack_lsp), or "" after 10 s.
std::string find_jack_port(const std::string& part) {
  for (int i = 0; i < 100; ++i) {
    FILE* p = popen("timeout -k 1 5 jack_lsp 2>/dev/null", "r");
    char buf[512];
    std::string found;
    while (p && fgets(buf, sizeof buf, p))
      if (found.empty() && std::string(buf).find(part) != std::string::npos) {
        found = buf;
        found.erase(found.find_last_not_of("\r\n") + 1);
      }
    if (p) pclose(p);
    if (!found.empty()) return found;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return "";
}

/// Records `port` for `seconds`; returns the tone's frequency (Hz: the median period between
/// rising crossings, with hysteresis since G.711 quantisation flickers around zero; rtpsend's
/// looped tone dips for ~16 ms once a second, which a crossing count would read as 433 Hz) and
/// its RMS over the recording's second half.
std::pair<double, double> tone_on_port(const std::string& port, double seconds) {
  JackProbe probe(port, seconds + 1.0);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  probe.stop();
  const std::size_t n = probe.frames(), from = n / 2;
  if (n < 2 || from + 1 >= n) return {0.0, 0.0};
  std::vector<double> periods;
  std::size_t last_rise = 0;
  bool low = false;
  double energy = 0;
  for (std::size_t i = from; i < n; ++i) {
    const float x = probe.samples()[i];
    if (x < -0.05f) low = true;
    if (low && x > 0.05f) {
      if (last_rise != 0) periods.push_back(static_cast<double>(i - last_rise));
      last_rise = i;
      low = false;
    }
    energy += static_cast<double>(x) * x;
  }
  if (periods.empty()) return {0.0, 0.0};
  std::nth_element(periods.begin(), periods.begin() + periods.size() / 2, periods.end());
  return {probe.rate() / periods[periods.size() / 2],
          std::sqrt(energy / static_cast<double>(n - from))};
}

}  // namespace

// Issue #15: ALSA without JACK is a first-class path. Tested through ALSA's jack PCM
// (libasound2-plugins), which the JACK dummy server paces: rtpnode --host-api alsa --device jack
// plays a 440 Hz PCMU stream; the JACK server is then killed and started again, the ALSA stream
// stalls, and rtpnode reopens the PCM (after 5 s of stall: an ALSA stream that stays "active"
// may resume by itself) and plays the tone again. Before the fix PortAudio's JACK host API,
// initialised next to ALSA, made Pa_Terminate abort the process once its server had died.
TEST(System, AlsaPcmPlaysAndIsReopenedAfterItsServerRestarts) {
  const std::string dir = test_dir();
  JackServer jack(dir, kPeriod, 2, "rtpnode-test-alsa");
  const int port = free_udp_port();
#if defined(__SANITIZE_ADDRESS__)
  // ALSA's jack PCM plugin (and the libjack it loads) leaks ~25 kB that LeakSanitizer can only
  // report as "<unknown module>": ALSA has dlclose()d the plugin by exit. Not rtpnode's to fix;
  // the leak check stays on for every other test.
  const char* asan = std::getenv("ASAN_OPTIONS");
  const std::string saved_asan = asan ? asan : "";
  setenv("ASAN_OPTIONS", (saved_asan + (saved_asan.empty() ? "" : ":") + "detect_leaks=0").c_str(),
         1);
#endif
  Process node({RTPNODE_BIN, "--host-api", "alsa", "--device", "jack", "--listen",
                "127.0.0.1:" + std::to_string(port), "--latency", "60ms", "--stats-json",
                dir + "/stats.json", "--stats-interval", "100ms"},
               dir + "/rtpnode.log");
#if defined(__SANITIZE_ADDRESS__)
  setenv("ASAN_OPTIONS", saved_asan.c_str(), 1);
#endif
  Process sender({RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--duration", "30s", "--dest",
                  "127.0.0.1:" + std::to_string(port)},
                 dir + "/rtpsend.log");
  const std::string out = ".P." + std::to_string(node.pid()) + ".";
  std::string alsa_port = find_jack_port(out);
  ASSERT_FALSE(alsa_port.empty()) << node.log();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto [hz, rms] = tone_on_port(alsa_port, 2.0);
  std::printf("ALSA jack PCM %s: %.1f Hz, RMS %.3f\n", alsa_port.c_str(), hz, rms);
  EXPECT_NEAR(hz, 440.0, 5.0) << node.log();
  EXPECT_GT(rms, 0.1);
  EXPECT_NE(node.log().find("playing on ALSA: jack"), std::string::npos) << node.log();

  jack.kill_now();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  jack.restart();
  json stats;
  for (int i = 0; i < 150; ++i) {  // up to 15 s: 5 s of stall, then the first attempt
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(dir + "/stats.json");
    stats = json::parse(in, nullptr, false);
    if (!stats.is_discarded() && stats["node"].value("device_reopens", 0) >= 1 &&
        stats["node"].value("device_state", "") == "running")
      break;
  }
  ASSERT_EQ(stats["node"].value("device_reopens", 0), 1) << node.log();
  alsa_port = find_jack_port(out);
  ASSERT_FALSE(alsa_port.empty()) << node.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::tie(hz, rms) = tone_on_port(alsa_port, 2.0);
  std::printf("after the restart: %.1f Hz, RMS %.3f\n", hz, rms);
  EXPECT_NEAR(hz, 440.0, 5.0) << node.log();
  EXPECT_GT(rms, 0.1);
  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(std::chrono::seconds(5)), std::optional<int>(0)) << node.log();
  sender.signal(SIGTERM);
  sender.wait(std::chrono::seconds(5));
}

// Issue #15: SIGHUP re-reads --config and applies what can change live: the gain of a playing
// source falls by 6 dB, ramped (no sample step beyond the sine's own), the stats and the log say
// so, a changed key that needs a restart is named and not applied, and a broken file is
// refused with its line while the node plays on. Rendered to a file: no device needed.
TEST(Service, SighupAppliesAGainChangeWithoutAClickAndNamesWhatNeedsARestart) {
  const std::string dir = test_dir();
  const int port = free_udp_port();
  const std::string conf = dir + "/rtpnode.toml";
  auto write_conf = [&](const std::string& extra) {
    std::ofstream(conf) << "listen = [\"127.0.0.1:" << port
                        << "\"]\npayload = [\"97=L16/48000/1\"]\nlatency = \"60ms\"\n"
                        << extra;
  };
  write_conf("gain = [\"port:" + std::to_string(port) + "=0dB\"]\n");
  Process node({RTPNODE_BIN, "--config", conf, "--output", dir + "/out.wav", "--duration", "6s",
                "--stats-json", dir + "/stats.json", "--stats-interval", "200ms", "--quiet"},
               dir + "/rtpnode.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Process sender({RTPSEND_BIN, "--tone", "440", "--codec", "l16", "--pt", "97", "--duration", "5s",
                  "--dest", "127.0.0.1:" + std::to_string(port)},
                 dir + "/rtpsend.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  write_conf("gain = [\"port:" + std::to_string(port) + "=-6dB\"]\nrtcp-rr = \"off\"\n");
  node.signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  json mid;
  std::ifstream(dir + "/stats.json") >> mid;
  ASSERT_EQ(mid["sources"].size(), 1u) << mid.dump(2);
  EXPECT_NEAR(mid["sources"][0].value("gain_db", 0.0), -6.0, 1e-9);
  std::ofstream(conf) << "listen = [\"127.0.0.1:5004\"\n";  // broken: refused, plays on
  node.signal(SIGHUP);
  EXPECT_EQ(sender.wait(std::chrono::seconds(10)), std::optional<int>(0)) << sender.log();
  EXPECT_EQ(node.wait(std::chrono::seconds(10)), std::optional<int>(0)) << node.log();
  const std::string log = node.log();
  EXPECT_NE(log.find("SIGHUP: configuration re-read; applied: gain; needs a restart (not "
                     "applied): rtcp-rr"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("SIGHUP: configuration not applied: " + conf + ":1:"), std::string::npos)
      << log;
  // The rendered mix: -6 dB after the change, and no step bigger than the sine's own.
  const Audio out = read_wav(dir + "/out.wav");
  ASSERT_GT(out.frames(), 48000u * 5);
  auto rms = [&](double from_s, double to_s) {
    double sum = 0;
    const auto a = static_cast<std::size_t>(from_s * 48000),
               b = static_cast<std::size_t>(to_s * 48000);
    for (std::size_t i = a; i < b; ++i)
      sum += static_cast<double>(out.samples[i * 2]) * out.samples[i * 2];
    return std::sqrt(sum / static_cast<double>(b - a));
  };
  const double before = rms(1.5, 2.5), after = rms(4.0, 5.0);
  std::printf("SIGHUP gain: rms %.4f before, %.4f after (%.2f dB)\n", before, after,
              20 * std::log10(after / before));
  EXPECT_NEAR(20 * std::log10(after / before), -6.0, 0.2);
  double peak = 0, max_step = 0;
  for (std::size_t i = 48000; i + 1 < static_cast<std::size_t>(5.0 * 48000); ++i) {
    peak = std::max(peak, static_cast<double>(std::abs(out.samples[i * 2])));
    max_step = std::max(
        max_step, static_cast<double>(std::abs(out.samples[(i + 1) * 2] - out.samples[i * 2])));
  }
  // A sine of amplitude A at 440 Hz moves at most 2 pi 440 / 48000 A per sample.
  EXPECT_LE(max_step, 1.1 * 2 * M_PI * 440 / 48000 * peak) << "a click at the gain change";
}

// Issue #15: --rt-priority. As root (the test machine): memory locked, the loop thread at
// SCHED_FIFO N - 10, and it plays. As an unprivileged user: one warning per thing not
// permitted, and it still plays (rendered to a file: no JACK access needed).
TEST(Service, RtPriorityLocksMemoryAndSchedulesTheLoopOrWarns) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "memory locking is off in sanitizer builds";
#endif
  if (geteuid() != 0) GTEST_SKIP() << "needs root (and setpriv for the unprivileged half)";
  const std::string dir = test_dir();
  JackServer jack(dir);
  Process node(
      {RTPNODE_BIN, "--host-api", "jack", "--client-name", "rtpn", "--listen",
       "127.0.0.1:" + std::to_string(free_udp_port()), "--rt-priority", "30", "--duration", "3s"},
      dir + "/rtpnode.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_1")) << node.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  std::string status;
  {
    std::ifstream in("/proc/" + std::to_string(node.pid()) + "/status");
    status.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string stat;
  {
    std::ifstream in("/proc/" + std::to_string(node.pid()) + "/stat");
    std::getline(in, stat);
  }
  // Fields after the command's closing parenthesis: 40 rt_priority and 41 policy are the 38th
  // and 39th from there.
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
  ASSERT_GT(f.size(), 39u) << stat;
  EXPECT_EQ(f[37], "20") << "rt_priority of the loop thread: " << stat;
  EXPECT_EQ(f[38], "1") << "policy (1 = SCHED_FIFO): " << stat;
  const auto lck = status.find("VmLck:");
  ASSERT_NE(lck, std::string::npos) << status;
  EXPECT_GT(std::stol(status.substr(lck + 6)), 1000) << status.substr(lck, 40);
  EXPECT_EQ(node.wait(std::chrono::seconds(10)), std::optional<int>(0)) << node.log();
  EXPECT_EQ(node.log().find("warning"), std::string::npos) << node.log();

  // Unprivileged: warnings, and it plays.
  const std::string out_dir = "/tmp/rtpnode-rt-" + std::to_string(getpid());
  std::filesystem::create_directories(out_dir);
  std::filesystem::permissions(out_dir, std::filesystem::perms::all);
  Process user({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                RTPNODE_BIN, "--listen", "127.0.0.1:" + std::to_string(free_udp_port()), "--output",
                out_dir + "/out.wav", "--duration", "500ms", "--rt-priority", "30"},
               dir + "/user.log");
  EXPECT_EQ(user.wait(std::chrono::seconds(10)), std::optional<int>(0)) << user.log();
  EXPECT_NE(user.log().find("warning: cannot run the loop thread at SCHED_FIFO 20"),
            std::string::npos)
      << user.log();
  EXPECT_NE(user.log().find("playing on file"), std::string::npos) << user.log();
  std::filesystem::remove_all(out_dir);
}

// Issue #15: under systemd (Type=notify, WatchdogSec=) rtpnode says READY=1 with a status once it
// plays, and WATCHDOG=1 only while the audio callback runs: a 1.5 s stop of the JACK server (no
// callbacks) stops the pings, and they resume with the callbacks. A datagram socket stands in for
// systemd's NOTIFY_SOCKET.
namespace {

/// A NOTIFY_SOCKET for the next rtpnode started: binds a datagram socket, sets NOTIFY_SOCKET and
/// WATCHDOG_USEC=300000 (WatchdogSec=300ms: a ping every 100 ms) until unset_env(), and records
/// every message with its time (s since construction) on a reader thread until destruction.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& name)
      : path_("/tmp/rtpnode-notify-" + name + "-" + std::to_string(getpid())),
        t0_(std::chrono::steady_clock::now()) {
    unlink(path_.c_str());
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    ok_ = fd_ >= 0 && bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{0, 50'000};
    if (ok_) setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    setenv("WATCHDOG_USEC", "300000", 1);
    reader_ = std::thread([this] {
      char buf[4096];
      while (ok_ && !done_) {
        const ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) continue;
        const std::lock_guard<std::mutex> lock(mu_);
        got_.emplace_back(since(), std::string(buf, static_cast<std::size_t>(n)));
      }
    });
  }
  ~NotifySocket() {
    done_ = true;
    reader_.join();
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }
  /// Once the process is started: later ones must not inherit the socket.
  static void unset_env() {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
  }
  [[nodiscard]] double since() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  [[nodiscard]] std::vector<std::pair<double, std::string>> messages() {
    const std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }
  /// Messages equal to `m` received in (from, to) s.
  [[nodiscard]] int count(const std::string& m, double from, double to) {
    int n = 0;
    for (const auto& [t, text] : messages()) n += text == m && t > from && t < to ? 1 : 0;
    return n;
  }

 private:
  std::string path_;
  std::chrono::steady_clock::time_point t0_;
  int fd_ = -1;
  bool ok_ = false;
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::vector<std::pair<double, std::string>> got_;
  std::thread reader_;
};

}  // namespace

// Issue #15 (idle cost): --idle-suspend 1s. With no source the JACK client leaves the graph
// (its ports are gone, device_state "suspended", device_up still 1) and the watchdog goes on
// being pinged (the loop is alive; the device is closed on purpose). The first packets of a
// source bring it back: the tone plays, at the delay a node that never slept plays it (60 ms
// fixed: arrival -> DAC 60 + lead + device latency), without a flush or concealment; when the
// source has gone, the device is released again.
TEST(Service, IdleSuspendLeavesTheGraphAndReturnsForTheFirstSource) {
  const std::string dir = test_dir();
  JackServer jack(dir, kPeriod);
  NotifySocket notify("idle");
  ASSERT_TRUE(notify.ok());
  const int port = free_udp_port();
  Process node({RTPNODE_BIN, "--host-api", "jack", "--client-name", "rtpn", "--listen",
                "127.0.0.1:" + std::to_string(port), "--idle-suspend", "1s", "--source-timeout",
                "1s", "--latency", "60ms", "--stats-json", dir + "/stats.json", "--stats-interval",
                "100ms", "--event-log", dir + "/events.jsonl"},
               dir + "/rtpnode.log");
  NotifySocket::unset_env();
  auto stats = [&] {
    std::ifstream in(dir + "/stats.json");
    return json::parse(in, nullptr, false);
  };
  auto has_port = [] {
    FILE* p = popen("timeout -k 1 5 jack_lsp 2>/dev/null", "r");
    std::string out;
    char buf[512];
    while (p && fgets(buf, sizeof buf, p)) out += buf;
    if (p) pclose(p);
    return out.find("rtpn:out_0") != std::string::npos;
  };
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_0")) << node.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  // Suspended: no ports, the state says so, the watchdog still pinged (one per 100 ms).
  EXPECT_FALSE(has_port()) << node.log();
  json s = stats();
  EXPECT_EQ(s["node"]["device_state"], "suspended") << s.dump(2);
  EXPECT_EQ(s["node"]["device_up"], true);
  EXPECT_EQ(s["node"]["device_suspensions"], 1);
  const double quiet_from = notify.since();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const int pings_suspended = notify.count("WATCHDOG=1", quiet_from, notify.since());
  EXPECT_GE(pings_suspended, 7) << "the watchdog must be pinged while suspended";

  Process sender({RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--duration", "4s", "--dest",
                  "127.0.0.1:" + std::to_string(port)},
                 dir + "/rtpsend.log");
  ASSERT_TRUE(jack.wait_for_port("rtpn:out_0")) << node.log();
  JackProbe probe("rtpn:out_0", 3.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  probe.stop();
  double energy = 0;
  for (std::size_t i = 0; i < probe.frames(); ++i)
    energy += static_cast<double>(probe.samples()[i]) * probe.samples()[i];
  const double rms = probe.frames() ? std::sqrt(energy / static_cast<double>(probe.frames())) : 0;
  s = stats();
  ASSERT_EQ(s["sources"].size(), 1u) << s.dump(2);
  const json& src = s["sources"][0];
  std::printf(
      "resumed: tone RMS %.3f over %zu frames; arrival -> DAC %.2f ms; flushes %d, "
      "concealed %d frames, underruns %d, skipped %d frames\n",
      rms, probe.frames(), src.value("arrival_to_dac_ms", 0.0), src.value("flushes", -1),
      src.value("frames_concealed", -1), src.value("underruns", -1),
      src.value("frames_skipped", -1));
  EXPECT_EQ(s["node"]["device_state"], "running");
  EXPECT_GT(rms, 0.3);  // the tone (0.354) plays from the probe's start on
  EXPECT_NEAR(src.value("arrival_to_dac_ms", 0.0), 60 + 1024.0 * 3 / 48 + 10, 2.0)
      << "60 ms + lead (1024 frames + 10 ms) + 2 periods of JACK latency";
  EXPECT_EQ(src.value("flushes", -1), 0);
  EXPECT_EQ(src.value("frames_concealed", -1), 0);
  // The first cycles may come before the loop's next turn: the rings were filled before the
  // device started, so nothing underruns; what went by while the device opened is skipped.
  EXPECT_EQ(src.value("underruns", -1), 0);
  double wake_ms = -1;
  {
    std::ifstream ev(dir + "/events.jsonl");
    for (std::string line; std::getline(ev, line);) {
      const json e = json::parse(line, nullptr, false);
      if (e.value("event", "") == "device_resumed") wake_ms = e.value("wake_ms", -1.0);
    }
  }
  std::printf("the device took %.1f ms to open again\n", wake_ms);
  EXPECT_GT(wake_ms, 0);
  EXPECT_LE(src.value("frames_skipped", -1), wake_ms * 48) << "only the wake-up costs audio";
  sender.wait(std::chrono::seconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // BYE, drain, 1 s idle
  EXPECT_FALSE(has_port()) << node.log();
  EXPECT_EQ(stats()["node"]["device_suspensions"], 2);
  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(std::chrono::seconds(5)), std::optional<int>(0)) << node.log();
  std::ifstream ev(dir + "/events.jsonl");
  int suspended = 0, resumed = 0;
  for (std::string line; std::getline(ev, line);) {
    const json e = json::parse(line);
    suspended += e["event"] == "device_suspended" ? 1 : 0;
    resumed += e["event"] == "device_resumed" ? 1 : 0;
  }
  EXPECT_EQ(suspended, 2);
  EXPECT_EQ(resumed, 1);
}

TEST(Service, NotifiesReadyAndPingsTheWatchdogOnlyWhileTheCallbackRuns) {
  const std::string dir = test_dir();
  JackServer jack(dir);
  NotifySocket notify("service");
  ASSERT_TRUE(notify.ok());
  Process node({RTPNODE_BIN, "--host-api", "jack", "--client-name", "rtpn", "--listen",
                "127.0.0.1:" + std::to_string(free_udp_port()), "--quiet"},
               dir + "/rtpnode.log");
  NotifySocket::unset_env();
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  const double pause_from = notify.since();
  jack.pause(std::chrono::milliseconds(1500));
  const double pause_to = notify.since();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  node.signal(SIGTERM);
  EXPECT_EQ(node.wait(std::chrono::seconds(10)), std::optional<int>(0)) << node.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int ready = 0, before = 0, during = 0, after = 0, stopping = 0;
  for (const auto& [t, m] : notify.messages()) {
    if (m.find("READY=1") != std::string::npos && m.find("STATUS=playing on") != std::string::npos)
      ++ready;
    if (m.find("STOPPING=1") != std::string::npos) ++stopping;
    if (m != "WATCHDOG=1") continue;
    if (t < pause_from) ++before;
    if (t > pause_from + 0.25 && t < pause_to) ++during;
    if (t > pause_to + 0.5) ++after;
  }
  std::printf("service: READY %d, watchdog pings %d before, %d while stopped, %d after\n", ready,
              before, during, after);
  EXPECT_EQ(ready, 1);
  EXPECT_GE(before, 10);  // about 2 s at one per 100 ms
  EXPECT_EQ(during, 0) << "pinged while the audio callback was stopped";
  EXPECT_GE(after, 5);
  EXPECT_EQ(stopping, 1);
}

/// Runs rtpnode with `args` (no audio device needed: these fail before or at device setup).
std::pair<int, std::string> run_node_expecting_error(std::vector<std::string> args) {
  const std::string dir = test_dir();
  args.insert(args.begin(), RTPNODE_BIN);
  Process p(args, dir + "/rtpnode.log");
  const auto rc = p.wait(std::chrono::seconds(20));
  return {rc.value_or(-1), p.log()};
}

TEST(Cli, BadFlagsFailWithOneLineNamingTheFix) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases{
      {{"--listen", "127.0.0.1:5004", "--latency", "40"}, "needs a unit"},
      {{"--listen", "127.0.0.1"}, "expected ADDR:PORT"},
      {{"--listen", "127.0.0.1:5004", "--payload", "96=mp3/44100"}, "unknown codec 'mp3'"},
      {{"--listen", "127.0.0.1:5004", "--raw", "s16le/8000"},
       "FORMAT/RATE/CHANNELS with FORMAT s16le"},
      {{"--raw", "s16le/8000/1", "--listen", "127.0.0.1:5004"}, "must follow the --listen"},
      {{"--listen", "127.0.0.1:5004", "--no-such-flag"}, "--no-such-flag"},
      {{"--listen", "127.0.0.1:5004", "--offset", "port:5006=+10ms"}, "no --listen has port 5006"},
      {{"--listen", "127.0.0.1:5004", "--gain", "ssrc:0xZZ=-6dB"}, "bad source selector"},
      {{"--listen", "127.0.0.1:5004", "--route", "port:5004=3"}, "names device channel 3"},
      {{"--listen", "127.0.0.1:5004", "--offset", "host:1=+1ms"}, "port:N or ssrc:0x1A2B3C4D"},
      {{}, "give at least one --listen"},
      {{"--listen", "127.0.0.1:5004", "--sync", "absolute", "--playout-delay", "5ms"},
       "--playout-delay 5ms is outside 10ms..5s"},
      {{"--listen", "127.0.0.1:5004", "--sync", "ntp"}, "--sync"},
  };
  for (const auto& c : cases) {
    const auto [rc, log] = run_node_expecting_error(c.args);
    EXPECT_EQ(rc, 2) << log;
    EXPECT_NE(log.find(c.says), std::string::npos) << "output: " << log;
  }
}

// Issue #15: --config FILE. Every flag round-trips through the file (--print-config writes the
// effective configuration as a config file; reading it back prints the same), the command line
// overrides the file, and errors name the file, the line and the key.
TEST(Cli, ConfigFileRoundTripsEveryFlagAndErrorsNameLineAndKey) {
  const std::string dir = test_dir();
  const std::vector<std::string> all{"--listen",
                                     "127.0.0.1:5004",
                                     "--listen",
                                     "127.0.0.1:6000",
                                     "--raw",
                                     "s16le/8000/1",
                                     "--payload",
                                     "96=opus/48000/2",
                                     "--latency",
                                     "80ms",
                                     "--min-latency",
                                     "10ms",
                                     "--max-latency",
                                     "500ms",
                                     "--profile",
                                     "music",
                                     "--render-lead",
                                     "12ms",
                                     "--drift",
                                     "off",
                                     "--resampler-quality",
                                     "5",
                                     "--source-timeout",
                                     "7s",
                                     "--sync",
                                     "absolute",
                                     "--playout-delay",
                                     "150ms",
                                     "--offset",
                                     "port:5004=+12.5ms",
                                     "--route",
                                     "port:6000=R",
                                     "--gain",
                                     "ssrc:0x1A2B3C4D=-6dB",
                                     "--channels",
                                     "2",
                                     "--client-name",
                                     "rn",
                                     "--duration",
                                     "1h",
                                     "--stats-interval",
                                     "2s",
                                     "--stats-json",
                                     dir + "/s.json",
                                     "--quiet",
                                     "--max-sources",
                                     "8",
                                     "--http",
                                     "127.0.0.1:8080",
                                     "--http-allow-remote",
                                     "--name",
                                     "attic",
                                     "--mdns",
                                     "off",
                                     "--allow",
                                     "10.0.0.0/8",
                                     "--event-log",
                                     dir + "/e.log",
                                     "--rtcp-rr",
                                     "off",
                                     "--rtcp-min-interval",
                                     "3s"};
  auto print = [&](std::vector<std::string> args) {
    args.emplace_back("--print-config");
    const auto [rc, out] = run_node_expecting_error(args);
    EXPECT_EQ(rc, 0) << out;
    return out;
  };
  const std::string first = print(all);
  { std::ofstream(dir + "/a.toml") << first; }
  const std::string second = print({"--config", dir + "/a.toml"});
  EXPECT_EQ(second, first);
  // Every flag given is a key of the file, set (not commented out).
  for (const std::string& a : all) {
    if (a.rfind("--", 0) != 0) continue;
    EXPECT_NE(first.find("\n" + a.substr(2) + " = "), std::string::npos) << a;
  }
  // The command line overrides the file, a repeatable flag replacing the file's values.
  const std::string over =
      print({"--config", dir + "/a.toml", "--latency", "40ms", "--listen", "127.0.0.1:5004",
             "--listen", "127.0.0.1:6000", "--raw", "s16le/16000/1"});
  EXPECT_NE(over.find("\nlatency = \"40ms\"\n"), std::string::npos) << over;
  EXPECT_NE(over.find("\nraw = [\"\", \"s16le/16000/1\"]"), std::string::npos) << over;
  EXPECT_NE(over.find("\nmax-sources = \"8\"\n"), std::string::npos) << over;  // from the file
  // Errors: one line naming file, line and key.
  struct Case {
    std::string file, says;
  };
  const std::vector<Case> cases{
      {"listen = [\"127.0.0.1:5004\"]\nlatncy = \"auto\"\n", "b.toml:2: unknown key 'latncy'"},
      {"listen = [\"127.0.0.1:5004\"]\n\nrtcp-rr = \"maybe\"\n", "b.toml:3: rtcp-rr:"},
      {"listen = [\"127.0.0.1:5004\"]\nmin-latency = \"5 parsecs\"\n",
       "b.toml:2: min-latency: --min-latency: duration '5 parsecs' needs a unit"},
      {"listen = [\"127.0.0.1:5004\"\nx = 1\n", "b.toml:2:"},
      {"listen = [\"127.0.0.1:5004\"]\nlatency = [\"auto\", \"80ms\"]\n",
       "b.toml:2: latency: takes one value"},
      {"listen = [\"127.0.0.1\"]\n", "expected ADDR:PORT"},
  };
  for (const auto& c : cases) {
    std::ofstream(dir + "/b.toml") << c.file;
    const auto [rc, log] = run_node_expecting_error({"--config", dir + "/b.toml"});
    EXPECT_EQ(rc, 2) << log;
    EXPECT_NE(log.find(c.says), std::string::npos) << "output: " << log;
  }
}

TEST(Cli, PortInUseIsReportedBeforeTouchingTheDevice) {
  const LoopbackUdp holder;
  const auto [rc, log] =
      run_node_expecting_error({"--listen", "127.0.0.1:" + std::to_string(holder.port)});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(log.find("address already in use"), std::string::npos) << log;
  EXPECT_EQ(log.find("ALSA lib"), std::string::npos) << "library noise leaked: " << log;
}

TEST(Cli, MissingHostApiNamesWhatIsAvailable) {
  const auto [rc, log] = run_node_expecting_error(
      {"--listen", "127.0.0.1:" + std::to_string(free_udp_port()), "--host-api", "no-such-api"});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(log.find("--host-api 'no-such-api' matches no host API"), std::string::npos) << log;
}

namespace {
/// Runs rtpsend for `seconds` to a UDP socket of this process; returns the least-squares packet
/// interval in seconds (a fit over all arrivals, robust to a few delayed packets).
double measured_interval(const std::vector<std::string>& extra, int seconds) {
  const std::string dir = test_dir();
  const LoopbackUdp rx(std::chrono::milliseconds(200));
  const int fd = rx.fd;
  const Audio tone = speech_8k();
  write_wav16(dir + "/in.wav", tone);
  std::vector<std::string> argv{
      RTPSEND_BIN, dir + "/in.wav", "--dest",     "127.0.0.1:" + std::to_string(rx.port), "--codec",
      "pcmu",      "--loop",        "--duration", std::to_string(seconds) + "s"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Process sender(argv, dir + "/rtpsend.log");
  std::vector<double> t;
  char buf[2048];
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(seconds + 3)) {
    if (recv(fd, buf, sizeof buf, 0) > 0)
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    else if (!t.empty() && sender.wait(std::chrono::milliseconds(0)))
      break;
  }
  EXPECT_EQ(sender.wait(std::chrono::seconds(5)), std::optional<int>(0)) << sender.log();
  const double n = static_cast<double>(t.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const double x = static_cast<double>(i);
    sx += x;
    sy += t[i];
    sxx += x * x;
    sxy += x * t[i];
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}
}  // namespace

TEST(Rtpsend, PacesOnPtimeAndSkewsTheRateOnRequest) {
  const double nominal = measured_interval({}, 5);
  EXPECT_NEAR(nominal, 0.020, 0.020 * 0.005);
  const double fast = measured_interval({"--skew-ppm", "1000"}, 5);
  // 1000 ppm fast: packets leave 0.1 % more often.
  EXPECT_NEAR(nominal / fast - 1.0, 0.001, 0.0003)
      << "nominal " << nominal << " s, skewed " << fast << " s";
}

namespace {
struct Received {
  double at_s;
  RtpHeaderView h;
  std::vector<std::uint8_t> bytes;
};

/// Runs rtpsend with `args` (after --dest) to a UDP listener of this process; parses every
/// datagram.
std::vector<Received> capture_rtpsend(std::vector<std::string> args, int max_seconds) {
  const std::string dir = test_dir();
  const LoopbackUdp rx_socket;
  const int fd = rx_socket.fd;
  std::vector<std::string> argv{RTPSEND_BIN, "--dest",
                                "127.0.0.1:" + std::to_string(rx_socket.port)};
  argv.insert(argv.end(), args.begin(), args.end());
  Process sender(argv, dir + "/rtpsend.log");
  std::vector<Received> out;
  std::vector<std::uint8_t> buf(65536);
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(max_seconds)) {
    const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      Received r;
      r.at_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      r.bytes.assign(buf.begin(), buf.begin() + n);
      out.push_back(std::move(r));
    } else if (sender.wait(std::chrono::milliseconds(0))) {
      break;
    }
  }
  EXPECT_EQ(sender.wait(std::chrono::seconds(5)), std::optional<int>(0)) << sender.log();
  for (auto& r : out) EXPECT_EQ(rtp_parse(r.bytes, r.h), RtpParseStatus::ok);
  return out;
}
}  // namespace

TEST(Rtpsend, DtxKeepsSequenceContiguousAndMarksTalkspurts) {
  // Clicks once a second: mostly digital silence, which Opus DTX stops sending.
  const auto rx =
      capture_rtpsend({"--clicks", "1/s", "--codec", "opus", "--dtx", "--duration", "3s"}, 10);
  ASSERT_GT(rx.size(), 10u);
  EXPECT_LT(rx.size(), 150u * 3 / 4);  // far fewer than 150 packets of 20 ms
  int ts_gaps = 0;
  for (std::size_t i = 1; i < rx.size(); ++i) {
    EXPECT_EQ(static_cast<seq_t>(rx[i].h.sequence_number - rx[i - 1].h.sequence_number), 1) << i;
    const auto dts = static_cast<std::uint32_t>(rx[i].h.timestamp - rx[i - 1].h.timestamp);
    if (dts > 960) {
      ++ts_gaps;
      EXPECT_TRUE(rx[i].h.marker) << "talkspurt start after a DTX gap must carry the marker bit";
    } else {
      EXPECT_EQ(dts, 960u);
    }
  }
  EXPECT_GE(ts_gaps, 1);
  EXPECT_TRUE(rx.front().h.marker);
}

TEST(Rtpsend, InjectsSenderRestartsJumpsAndPauses) {
  const auto rx = capture_rtpsend(
      {"--tone", "1kHz", "--codec", "pcmu", "--duration", "4s", "--ssrc-change-at", "3s",
       "--seq-jump-at", "1s", "--ts-jump-at", "2s", "--pause", "400ms@2400ms"},
      12);
  ASSERT_GT(rx.size(), 100u);
  std::map<std::uint32_t, int> per_ssrc;
  int seq_jumps = 0, ts_jumps = 0, pauses = 0;
  for (std::size_t i = 0; i < rx.size(); ++i) {
    ++per_ssrc[rx[i].h.ssrc];
    if (i == 0 || rx[i].h.ssrc != rx[i - 1].h.ssrc) continue;
    const auto dseq = static_cast<seq_t>(rx[i].h.sequence_number - rx[i - 1].h.sequence_number);
    const auto dts = static_cast<std::uint32_t>(rx[i].h.timestamp - rx[i - 1].h.timestamp);
    if (dseq == 10001)
      ++seq_jumps;
    else
      EXPECT_EQ(dseq, 1) << i;
    if (dts == 160 + 8000 * 60)
      ++ts_jumps;
    else if (dts == 160 * 21) {  // 400 ms without packets: 20 packet times skipped
      ++pauses;
      EXPECT_TRUE(rx[i].h.marker) << "the first packet after a pause starts a talkspurt";
    } else
      EXPECT_EQ(dts, 160u) << i;
  }
  EXPECT_EQ(per_ssrc.size(), 2u);
  EXPECT_EQ(seq_jumps, 1);
  EXPECT_EQ(ts_jumps, 1);
  EXPECT_EQ(pauses, 1);
  EXPECT_EQ(rx.size(), 200u - 20u);
}

TEST(Rtpsend, SeveralFilesBecomeSeveralStreams) {
  const std::string dir = test_dir();
  write_wav16(dir + "/a.wav", speech_8k());
  write_wav16(dir + "/b.wav", speech_8k());
  const auto rx =
      capture_rtpsend({dir + "/a.wav", dir + "/b.wav", "--codec", "pcma", "--ssrc", "1000"}, 10);
  std::map<std::uint32_t, int> per_ssrc;
  for (const auto& r : rx) {
    ++per_ssrc[r.h.ssrc];
    EXPECT_EQ(r.h.payload_type, 8);
  }
  ASSERT_EQ(per_ssrc.size(), 2u);
  EXPECT_EQ(per_ssrc[1000], per_ssrc[1001]);
  EXPECT_GT(per_ssrc[1000], 50);
}

TEST(Rtpsend, ToneIsTheRequestedFrequency) {
  const auto rx = capture_rtpsend({"--tone", "1kHz", "--codec", "l16", "--duration", "1s"}, 8);
  ASSERT_GT(rx.size(), 40u);
  // L16 at 48 kHz mono: count sign changes over the received audio.
  std::vector<float> pcm;
  auto dec = make_decoder(PayloadFormat{Codec::l16, 48000, 48000, 1});
  std::vector<float> frame(4096);
  for (const auto& r : rx) {
    const int n = dec->decode(r.h.payload, frame);
    ASSERT_GT(n, 0);
    pcm.insert(pcm.end(), frame.begin(), frame.begin() + n);
  }
  int crossings = 0;
  for (std::size_t i = 1; i < pcm.size(); ++i) crossings += (pcm[i - 1] < 0) != (pcm[i] < 0);
  const double seconds = static_cast<double>(pcm.size()) / 48000;
  EXPECT_NEAR(crossings / 2.0 / seconds, 1000.0, 5.0);
}

namespace {
/// ffmpeg, an independent receiver, decodes rtpsend's stream from rtpsend's SDP.
Audio ffmpeg_receive(const Audio& input, const std::vector<std::string>& codec_args) {
  const std::string dir = test_dir();
  write_wav16(dir + "/in.wav", input);
  const int port = free_udp_port() & ~1;  // RTP on an even port, RTCP on the next
  std::vector<std::string> send{
      RTPSEND_BIN, dir + "/in.wav",     "--dest",     "127.0.0.1:" + std::to_string(port),
      "--sdp",     dir + "/stream.sdp", "--start-at", "+2s"};
  send.insert(send.end(), codec_args.begin(), codec_args.end());
  Process sender(send, dir + "/rtpsend.log");
  for (int i = 0; i < 50 && !std::filesystem::exists(dir + "/stream.sdp"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double seconds = static_cast<double>(input.frames()) / input.rate;
  Process ffmpeg({"ffmpeg", "-v", "error", "-protocol_whitelist", "file,udp,rtp", "-i",
                  dir + "/stream.sdp", "-t", std::to_string(seconds + 0.5), "-y", dir + "/out.wav"},
                 dir + "/ffmpeg.log");
  EXPECT_EQ(sender.wait(std::chrono::seconds(20)), std::optional<int>(0)) << sender.log();
  // ffmpeg stops at -t, or on its own timeout once the stream ends.
  if (!ffmpeg.wait(std::chrono::seconds(8))) ffmpeg.signal(SIGINT);
  ffmpeg.wait(std::chrono::seconds(5));
  if (!std::filesystem::exists(dir + "/out.wav")) {
    ADD_FAILURE() << "ffmpeg wrote nothing: " << ffmpeg.log();
    return {};
  }
  return read_wav(dir + "/out.wav");
}
}  // namespace

TEST(Interop, FfmpegDecodesRtpsendStreamsFromTheSdp) {
  if (std::system("command -v ffmpeg > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "ffmpeg not installed";
  struct Case {
    const char* name;
    Audio input;
    std::vector<std::string> args;
  };
  const Audio speech48 = load_recording(std::string(kAlsaDir) + "Front_Center.wav");
  const std::vector<Case> cases{
      {"opus", speech48, {"--codec", "opus", "--channels", "2", "--bitrate", "96000"}},
      {"pcmu", speech_8k(), {"--codec", "pcmu"}},
      {"l16", stereo_recording(), {"--codec", "l16", "--pt", "97"}},
      {"l24", stereo_recording(), {"--codec", "l24", "--pt", "98", "--ptime", "1ms"}},
  };
  for (const auto& c : cases) {
    const Audio out = ffmpeg_receive(c.input, c.args);
    ASSERT_GT(out.frames(), 0u) << c.name;
    const Audio ref = out.rate == c.input.rate ? c.input : resample(c.input, out.rate, 10);
    EXPECT_GE(best_correlation(out, ref, out.rate / 10), 0.9)
        << c.name << ": ffmpeg decoded at " << out.rate << " Hz";
  }
}

TEST(Rtpsend, SendsRtcpSenderReportsWithNtpTimeAndByeAtTheEnd) {
  const std::string dir = test_dir();
  // RTP to an unused port P (nobody listens), RTCP to P+1 where this test listens.
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rtcp_port = 0;
  for (int p = 40001; p < 60000; p += 2) {  // an odd port whose even neighbour we do not need
    a.sin_port = htons(static_cast<std::uint16_t>(p));
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      rtcp_port = p;
      break;
    }
  }
  ASSERT_GT(rtcp_port, 0);
  timeval tv{0, 100'000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  Process sender(
      {RTPSEND_BIN, "--tone", "440", "--codec", "pcmu", "--duration", "3s", "--rtcp-interval",
       "500ms", "--ssrc", "4660", "--dest", "127.0.0.1:" + std::to_string(rtcp_port - 1)},
      dir + "/rtpsend.log");
  int sr = 0, bye = 0;
  std::vector<std::uint8_t> buf(2048);
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(8)) {
    const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) {
      if (sender.wait(std::chrono::milliseconds(0))) break;
      continue;
    }
    // Walk the compound packet (RFC 3550 §6.1): each part is 4 * (length + 1) bytes.
    for (std::size_t off = 0; off + 4 <= static_cast<std::size_t>(n);) {
      const std::uint8_t type = buf[off + 1];
      const std::size_t len = 4 * ((std::size_t{buf[off + 2]} << 8 | buf[off + 3]) + 1);
      if (type == 200 && off + 28 <= static_cast<std::size_t>(n)) {  // SR
        ++sr;
        const std::uint32_t ssrc = std::uint32_t{buf[off + 4]} << 24 |
                                   std::uint32_t{buf[off + 5]} << 16 |
                                   std::uint32_t{buf[off + 6]} << 8 | buf[off + 7];
        EXPECT_EQ(ssrc, 4660u);
        const std::uint32_t ntp_s = std::uint32_t{buf[off + 8]} << 24 |
                                    std::uint32_t{buf[off + 9]} << 16 |
                                    std::uint32_t{buf[off + 10]} << 8 | buf[off + 11];
        const double unix_now = static_cast<double>(std::time(nullptr));
        EXPECT_NEAR(static_cast<double>(ntp_s) - 2208988800.0, unix_now, 5.0)
            << "NTP time (RFC 3550 §4)";
      }
      if (type == 203) ++bye;
      off += len;
    }
  }
  close(fd);
  EXPECT_EQ(sender.wait(std::chrono::seconds(5)), std::optional<int>(0)) << sender.log();
  EXPECT_GE(sr, 3);
  EXPECT_EQ(bye, 1);
}

TEST(Rtpsend, ReadsHeaderlessPcmFiles) {
  const std::string dir = test_dir();
  std::vector<std::int16_t> pcm(8000);
  for (std::size_t i = 0; i < pcm.size(); ++i)
    pcm[i] = static_cast<std::int16_t>((i % 80) * 100 - 4000);
  std::ofstream(dir + "/in.raw", std::ios::binary)
      .write(reinterpret_cast<const char*>(pcm.data()), 16000);
  const auto rx =
      capture_rtpsend({dir + "/in.raw", "--raw-format", "s16le/8000/1", "--codec", "l16"}, 8);
  ASSERT_EQ(rx.size(), 50u);  // 1 s in 20 ms packets
  auto dec = make_decoder(PayloadFormat{Codec::l16, 8000, 8000, 1});
  std::vector<float> out(160);
  for (std::size_t p = 0; p < rx.size(); ++p) {
    ASSERT_EQ(dec->decode(rx[p].h.payload, out), 160);
    for (std::size_t i = 0; i < 160; ++i)
      ASSERT_EQ(out[i] * 32768.0f, pcm[p * 160 + i]) << p << ":" << i;
  }
}

TEST(Cli, RtpsendErrorsFailWithOneLine) {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases{
      {{"/no/such/file.wav", "--dest", "127.0.0.1:5004"}, "/no/such/file.wav"},
      {{"--tone", "1kHz", "--dest", "127.0.0.1:5004", "--codec", "opus", "--ptime", "30ms"},
       "Opus frames are"},
      {{"--tone", "1kHz", "--dest", "localhost:5004"}, "bad IP address"},
      {{"--tone", "1kHz", "--dest", "127.0.0.1:5004", "--loss", "200%"}, "--loss"},
      {{"--tone", "1kHz", "--dest", "127.0.0.1:5004", "--jitter", "gauss:5ms"},
       "unknown jitter model"},
      {{"--tone", "1kHz", "--dest", "127.0.0.1:5004", "--codec", "pcmu", "--dtx"},
       "--dtx is an Opus, G.729 and AMR option"},
      {{"--tone", "1kHz", "--dest", "127.0.0.1:5004", "--codec", "g729", "--dtx"},
       "--dtx with G.729 needs --ptime 10ms"},
      {{"--tone", "1kHz", "--dest", "127.0.0.1:5004", "--codec", "g729", "--ptime", "15ms"},
       "G.729 frames are 10 ms"},
      {{"--tone", "1kHz", "--dest", "127.0.0.1:5004", "--codec", "amr", "--ptime", "10ms"},
       "AMR frames are 20 ms"},
      {{"--tone", "1kHz", "--dest", "127.0.0.1:5004", "--amr-octet-align"},
       "--amr-octet-align is an AMR option"},
      {{"--dest", "127.0.0.1:5004"}, "nothing to send"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv{RTPSEND_BIN};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Process p(argv, test_dir() + "/rtpsend.log");
    const auto rc = p.wait(std::chrono::seconds(10));
    EXPECT_EQ(rc, std::optional<int>(2)) << p.log();
    EXPECT_NE(p.log().find(c.says), std::string::npos) << "output: " << p.log();
  }
}

namespace {
/// Mean, over packets k, of the correlation between frame k-1 recovered from packet k's in-band
/// FEC (decode_fec = 1, RFC 6716 §4.2.5 LBRR) and frame k-1 decoded normally.
double fec_recovery_correlation(const std::vector<Received>& rx) {
  int err = 0;
  OpusDecoder* normal = opus_decoder_create(48000, 1, &err);
  OpusDecoder* lossy = opus_decoder_create(48000, 1, &err);
  std::vector<float> ref(960), rec(960);
  double sum = 0;
  int n = 0;
  std::vector<float> prev_ref;
  for (std::size_t k = 0; k < rx.size(); ++k) {
    const auto& p = rx[k].h.payload;
    if (k >= 2) {
      // `lossy` has seen packets up to k-2; packet k-1 is "lost": recover it from packet k.
      EXPECT_EQ(
          opus_decode_float(lossy, p.data(), static_cast<opus_int32>(p.size()), rec.data(), 960, 1),
          960);
      double xy = 0, xx = 0, yy = 0;
      for (int i = 0; i < 960; ++i) {
        xy += prev_ref[static_cast<std::size_t>(i)] * rec[static_cast<std::size_t>(i)];
        xx += prev_ref[static_cast<std::size_t>(i)] * prev_ref[static_cast<std::size_t>(i)];
        yy += rec[static_cast<std::size_t>(i)] * rec[static_cast<std::size_t>(i)];
      }
      if (xx > 1e-4 && yy > 0) {
        sum += xy / std::sqrt(xx * yy);
        ++n;
      }
      // Keep `lossy` one packet behind `normal` for the next round.
      EXPECT_EQ(opus_decode_float(lossy, rx[k - 1].h.payload.data(),
                                  static_cast<opus_int32>(rx[k - 1].h.payload.size()), rec.data(),
                                  960, 0),
                960);
    }
    EXPECT_EQ(
        opus_decode_float(normal, p.data(), static_cast<opus_int32>(p.size()), ref.data(), 960, 0),
        960);
    prev_ref = ref;
  }
  opus_decoder_destroy(normal);
  opus_decoder_destroy(lossy);
  return n ? sum / n : 0;
}
}  // namespace

TEST(Rtpsend, OpusInBandFecCarriesThePreviousFrame) {
  const std::string dir = test_dir();
  write_wav16(dir + "/speech.wav", speech_8k());
  const std::vector<std::string> base{dir + "/speech.wav", "--codec", "opus", "--channels", "1",
                                      "--bitrate",         "24000"};
  auto with = base;
  with.insert(with.end(), {"--expected-loss", "20%"});
  const double fec_on = fec_recovery_correlation(capture_rtpsend(with, 10));
  const double fec_off = fec_recovery_correlation(capture_rtpsend(base, 10));
  std::cerr << "FEC recovery correlation: with --expected-loss 20% " << fec_on << ", without "
            << fec_off << "\n";
  EXPECT_GT(fec_on, 0.7) << "FEC-recovered frames should match the lost ones";
  EXPECT_GT(fec_on, fec_off + 0.2)
      << "without FEC, decode_fec only conceals: on " << fec_on << ", off " << fec_off;
}

TEST(Rtpsend, StartsAtAnAbsoluteUnixTime) {
  const double start = static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count()) /
                           1000.0 +
                       1.5;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", start);
  const auto rx = capture_rtpsend(
      {"--tone", "440", "--codec", "pcmu", "--duration", "500ms", "--start-at", buf}, 8);
  ASSERT_FALSE(rx.empty());
  EXPECT_NEAR(rx.front().at_s, 1.5,
              0.25);  // capture_rtpsend's clock starts when rtpsend is launched
  EXPECT_EQ(rx.size(), 25u);
}
