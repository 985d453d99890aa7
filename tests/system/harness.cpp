#include "system/harness.hpp"

#include "tools/rtpsend/audio_input.hpp"
#include "support/tcp_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sndfile.h>
#include <spawn.h>
#include <speex/speex_resampler.h>
#include <sys/socket.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace rtpnode::systest {

namespace {
// ctest reads a test's output through a pipe and kills the test at its timeout; with stdout
// fully buffered, a hung test's output is lost (a CI run's 420 s timeout printed nothing).
[[maybe_unused]] const bool kStdoutLineBuffered = std::setvbuf(stdout, nullptr, _IOLBF, 0) == 0;
}  // namespace

Audio read_wav(const std::string& path) {
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (!f) throw std::runtime_error("cannot read " + path + ": " + sf_strerror(nullptr));
  Audio a;
  a.rate = info.samplerate;
  a.channels = info.channels;
  a.samples.resize(static_cast<std::size_t>(info.frames * info.channels));
  sf_readf_float(f, a.samples.data(), info.frames);
  sf_close(f);
  return a;
}

void write_wav16(const std::string& path, const Audio& a) {
  SF_INFO info{};
  info.samplerate = a.rate;
  info.channels = a.channels;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  if (!f) throw std::runtime_error("cannot write " + path);
  // Exact: every sample is k/32768; libsndfile's float->int conversion would clip at 1.0 anyway.
  std::vector<short> s(a.samples.size());
  for (std::size_t i = 0; i < s.size(); ++i)
    s[i] = static_cast<short>(std::lround(a.samples[i] * 32768.0f));
  sf_writef_short(f, s.data(), static_cast<sf_count_t>(a.frames()));
  sf_close(f);
}

Audio load_recording(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw std::runtime_error(path + " missing: run tools/setup.sh");
  // Read as rtpsend reads it (16-bit samples), so the file we hand to rtpsend holds exactly
  // these values.
  const rtpsend::Audio pcm = rtpsend::read_audio_file(path);
  Audio a;
  a.rate = pcm.rate;
  a.channels = pcm.channels;
  a.samples.reserve(pcm.samples.size());
  for (std::int16_t v : pcm.samples) a.samples.push_back(static_cast<float>(v) / 32768.0f);
  return a;
}

Audio resample(const Audio& in, int rate, int quality) {
  if (in.rate == rate) return in;
  int err = 0;
  SpeexResamplerState* st = speex_resampler_init(static_cast<spx_uint32_t>(in.channels),
                                                 static_cast<spx_uint32_t>(in.rate),
                                                 static_cast<spx_uint32_t>(rate), quality, &err);
  speex_resampler_skip_zeros(st);
  Audio out;
  out.rate = rate;
  out.channels = in.channels;
  out.samples.resize(
      (in.frames() * static_cast<std::size_t>(rate) / static_cast<std::size_t>(in.rate) + 64) *
      static_cast<std::size_t>(in.channels));
  auto in_len = static_cast<spx_uint32_t>(in.frames());
  auto out_len = static_cast<spx_uint32_t>(out.frames());
  speex_resampler_process_interleaved_float(st, in.samples.data(), &in_len, out.samples.data(),
                                            &out_len);
  speex_resampler_destroy(st);
  out.samples.resize(std::size_t{out_len} * static_cast<std::size_t>(in.channels));
  return out;
}

Process::Process(const std::vector<std::string>& argv, const std::string& log_path)
    : log_path_(log_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // A process group of its own, so that the destructor can end what it started too: a script
  // killed with SIGKILL runs no trap, and its children (a CI run left a PipeWire daemon and pw-cat
  // spinning at 17 % CPU, and the next test's sender then came late) would outlive the test.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  const int rc = posix_spawnp(&pid_, args[0], &fa, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
}

Process::~Process() {
  if (pid_ <= 0) return;
  kill(-pid_, SIGKILL);  // the group: the process and whatever it left running
  if (!status_) waitpid(pid_, nullptr, 0);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return status_;
    }
    if (std::chrono::steady_clock::now() > end) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool freeze_thread(pid_t tid, std::chrono::milliseconds duration) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) return false;
  int status = 0;
  const bool stopped =
      ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) == 0 && waitpid(tid, &status, __WALL) == tid;
  if (stopped) std::this_thread::sleep_for(duration);
  ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  return stopped;
}

void Process::signal(int sig) {
  if (!status_) kill(pid_, sig);
}

std::string Process::log() const {
  std::ifstream f(log_path_);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

JackServer::JackServer(const std::string& dir, int period, int playback_channels,
                       const std::string& name) {
  static std::atomic<int> counter{0};
  name_ = !name.empty()
              ? name
              : "rtpnode-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  setenv("JACK_DEFAULT_SERVER", name_.c_str(), 1);
  setenv("JACK_NO_START_SERVER", "1", 1);
  setenv("JACK_NO_AUDIO_RESERVATION", "1", 1);
  std::vector<std::string> argv{"jackd", "-n", name_};
  if (geteuid() == 0)
    argv.insert(argv.end(), {"-R", "-P", "70"});
  else
    argv.emplace_back("--no-realtime");
  argv.insert(argv.end(), {"-d", "dummy", "-r", "48000", "-p", std::to_string(period), "-C", "2",
                           "-P", std::to_string(playback_channels)});
  argv_ = argv;
  dir_ = dir;
  start();
}

void JackServer::restart() {
  start();
}

void JackServer::start() {
  const std::string n = starts_ == 0 ? "" : std::to_string(starts_);
  ++starts_;
  jackd_ = std::make_unique<Process>(argv_, dir_ + "/jackd" + n + ".log");
  Process waiter({"jack_wait", "-w", "-t", "10"}, dir_ + "/jack_wait" + n + ".log");
  const auto rc = waiter.wait(std::chrono::seconds(15));
  if (!rc || *rc != 0)
    throw std::runtime_error("JACK dummy server did not start: " + jackd_->log());
}

long rss_kb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

JackServer::~JackServer() {
  jackd_->signal(SIGTERM);
  jackd_->wait(std::chrono::seconds(3));
}

void JackServer::kill_now() {
  jackd_->signal(SIGKILL);
  jackd_->wait(std::chrono::seconds(3));
}

void JackServer::pause(std::chrono::milliseconds duration) {
  jackd_->signal(SIGSTOP);
  std::this_thread::sleep_for(duration);
  jackd_->signal(SIGCONT);
}

bool JackServer::wait_for_port(const std::string& port) {
  // 10 s in all; each jack_lsp is bounded too (a client of a wedged server can block for good).
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < end) {
    FILE* p = popen("timeout -k 1 5 jack_lsp 2>/dev/null", "r");
    std::string out;
    char buf[512];
    while (p && fgets(buf, sizeof buf, p)) out += buf;
    if (p) pclose(p);
    if (out.find(port) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

LoopbackNamespace::LoopbackNamespace() : name_("rtpnode-mc-" + std::to_string(getpid())) {
  ok_ =
      std::system(("ip netns add " + name_ + " 2>/dev/null").c_str()) == 0 &&
      std::system(("ip netns exec " + name_ + " ip link set lo up").c_str()) == 0 &&
      std::system(
          ("ip netns exec " + name_ + " ip route add 224.0.0.0/4 dev lo src 127.0.0.1").c_str()) ==
          0;
}

LoopbackNamespace::~LoopbackNamespace() {
  if (std::system(("ip netns del " + name_ + " 2>/dev/null").c_str()) != 0) {
  }
}

std::vector<std::string> in_netns(const std::string& netns, std::vector<std::string> argv) {
  if (!netns.empty()) argv.insert(argv.begin(), {"ip", "netns", "exec", netns});
  return argv;
}

namespace {

struct CpuTimes {
  unsigned long long total = 0, lost = 0;  // jiffies: all; iowait + steal
};

CpuTimes read_cpu_times() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long v[10] = {};
  in >> cpu;
  for (auto& x : v) in >> x;
  CpuTimes t;
  for (auto x : v) t.total += x;
  t.total -= v[8] + v[9];  // guest time is already in user time
  t.lost = v[4] + v[7];    // iowait, steal
  return t;
}

}  // namespace

double wait_for_quiet_machine(std::chrono::seconds limit, double max_lost_percent) {
  const auto end = std::chrono::steady_clock::now() + limit;
  double lost = 0;
  for (;;) {
    const CpuTimes a = read_cpu_times();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const CpuTimes b = read_cpu_times();
    lost = b.total > a.total ? 100.0 * static_cast<double>(b.lost - a.lost) /
                                   static_cast<double>(b.total - a.total)
                             : 0.0;
    if (lost < max_lost_percent || std::chrono::steady_clock::now() >= end) break;
  }
  std::cerr << "note: before running again, the CPUs lost " << lost
            << " % of a second to steal and I/O wait\n";
  return lost;
}

std::string test_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = ::testing::TempDir() + "rtpnode-" + std::to_string(getpid()) + "-" +
                          info->test_suite_name() + "-" + info->name();
  // Fresh for each test: a directory left by an earlier run whose process had the same pid
  // would otherwise hand its files over (an appended --event-log counted that run's events too;
  // seen in CI). Cleared once per test: a test may ask for its directory more than once.
  static std::string cleared;
  if (cleared != dir) {
    std::filesystem::remove_all(dir);
    cleared = dir;
  }
  std::filesystem::create_directories(dir);
  return dir;
}

bool send_loopback(int fd, int port, std::span<const std::uint8_t> bytes) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a) ==
         static_cast<ssize_t>(bytes.size());
}

LoopbackUdp::LoopbackUdp(std::chrono::milliseconds recv_timeout) {
  fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("cannot bind a loopback UDP socket");
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  const auto us = recv_timeout.count() * 1000;
  timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

LoopbackUdp::~LoopbackUdp() {
  if (fd >= 0) close(fd);
}

namespace {

/// The kernel's ephemeral range (net.ipv4.ip_local_port_range); 32768-60999 if unreadable.
std::pair<int, int> ephemeral_range() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int lo = 32768, hi = 60999;
  if (!(in >> lo >> hi) || lo < 1 || hi > 65535 || lo > hi) return {32768, 60999};
  return {lo, hi};
}

/// True when `port` can be bound on 127.0.0.1 now with `type` (SOCK_DGRAM or SOCK_STREAM).
bool bindable(int type, int port) {
  const int fd = socket(AF_INET, type, 0);
  if (fd < 0) return false;
  const int one = 1;
  if (type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

/// An even port outside the ephemeral range whose pair (port, port + 1) binds with `type` now.
/// A port the kernel handed out as ephemeral could be handed out again, between our close and
/// rtpnode's bind, to any socket that sends or connects (rtpsend, an HTTP client, another
/// test): CI once
/// failed with "cannot bind: address already in use" that way. Ports outside the range are only
/// ever taken by an explicit bind; parallel test processes start at different points (pid) and
/// step through the span, so two of them rarely try the same port at the same time.
int pick_port(int type) {
  static std::atomic<unsigned> counter{0};
  const auto [lo, hi] = ephemeral_range();
  // The larger span outside [lo, hi], above the privileged and well-known ports.
  int first = 10000, last = lo - 2;
  if (hi + 1 < 65534 && 65534 - (hi + 1) > last - first) first = hi + 1, last = 65533;
  if (last - first < 100) first = 10000, last = 65533;  // no room outside: any port
  const unsigned span = static_cast<unsigned>(last - first) / 2;
  const unsigned start = static_cast<unsigned>(getpid()) * 2654435761u;
  for (unsigned tries = 0; tries < span; ++tries) {
    const unsigned i = (start + counter.fetch_add(1) * 7919u) % span;
    const int port = (first + 1) / 2 * 2 + 2 * static_cast<int>(i);
    if (port + 1 > last) continue;
    if (bindable(type, port) && bindable(type, port + 1)) return port;
  }
  throw std::runtime_error("no free loopback port pair outside the ephemeral range");
}

}  // namespace

int free_udp_port() {
  return pick_port(SOCK_DGRAM);
}

int free_tcp_port() {
  return pick_port(SOCK_STREAM);
}

HttpReply http_request(int port, const std::string& method, const std::string& path) {
  HttpReply r;
  const int fd = rtpnode::test::connect_loopback_tcp(port);
  if (fd < 0) return r;
  const std::string req = method + " " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return r;
  }
  std::string out;
  char buf[8192];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  close(fd);
  if (out.size() < 12 || out.compare(0, 5, "HTTP/") != 0) return r;
  r.status = std::atoi(out.substr(9, 3).c_str());
  const auto body = out.find("\r\n\r\n");
  if (body != std::string::npos) r.body = out.substr(body + 4);
  return r;
}

std::pair<int, std::string> run_command(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return {-1, out};
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

namespace {

bool silent_frame(const Audio& a, std::size_t f, float threshold) {
  for (int c = 0; c < a.channels; ++c)
    if (std::fabs(
            a.samples[f * static_cast<std::size_t>(a.channels) + static_cast<std::size_t>(c)]) >
        threshold)
      return false;
  return true;
}

long first_sound(const Audio& a, float threshold) {
  for (std::size_t f = 0; f < a.frames(); ++f)
    if (!silent_frame(a, f, threshold)) return static_cast<long>(f);
  return -1;
}

bool frame_equal(const Audio& cap, long c, const Audio& exp, long e, float tol) {
  if (c < 0 || e < 0 || static_cast<std::size_t>(c) >= cap.frames() ||
      static_cast<std::size_t>(e) >= exp.frames())
    return false;
  for (int ch = 0; ch < exp.channels; ++ch) {
    const float x = cap.samples[static_cast<std::size_t>(c * cap.channels + ch)];
    const float y = exp.samples[static_cast<std::size_t>(e * exp.channels + ch)];
    if (std::fabs(x - y) > tol) return false;
  }
  return true;
}

}  // namespace

ExactMatch match_exact(const Audio& capture, const Audio& expected, int period, float tolerance) {
  ExactMatch m;
  const long c0 = first_sound(capture, 0.0f);
  const long e0 = first_sound(expected, 0.0f);
  if (c0 < 0 || e0 < 0) return m;
  long d = c0 - e0;  // capture frame = expected frame + d
  m.first_offset = d;
  // Start at expected frame 0: leading silence must be silent in the capture too.
  for (long c = std::max(0L, d); c < static_cast<long>(capture.frames()); ++c) {
    const long e = c - d;
    if (e >= static_cast<long>(expected.frames())) break;
    if (frame_equal(capture, c, expected, e, tolerance)) {
      ++m.matched_frames;
      continue;
    }
    if (silent_frame(capture, static_cast<std::size_t>(c), 0.0f)) {  // a dropped period
      ++m.silent_gap_frames;
      continue;
    }
    // Realign at +-k periods: the run that follows must match for a whole period.
    bool realigned = false;
    for (int k = 1; k <= 8 && !realigned; ++k) {
      for (int sign : {-1, 1}) {
        const long nd = d + sign * k * period;
        const long n = std::min<long>(period, static_cast<long>(expected.frames()) - (c - nd));
        if (n <= 0) continue;
        bool ok = true;
        for (long i = 0; i < n && ok; ++i)
          ok = frame_equal(capture, c + i, expected, c + i - nd, tolerance);
        if (ok) {
          d = nd;
          ++m.realignments;
          realigned = true;
          break;
        }
      }
    }
    if (realigned) {
      --c;  // re-check this frame with the new alignment
      continue;
    }
    ++m.mismatched_frames;
  }
  return m;
}

namespace {
/// Normalized cross-correlation of expected frames [e0, e1) with the capture shifted by `lag`
/// (channel 0 of each), visiting every `step`-th frame.
double correlation_at(const Audio& capture, const Audio& expected, long lag, long e0, long e1,
                      long step) {
  double xy = 0, xx = 0, yy = 0;
  for (long e = e0; e < e1; e += step) {
    const long c = e + lag;
    if (c < 0 || c >= static_cast<long>(capture.frames())) continue;
    const double x = capture.samples[static_cast<std::size_t>(c * capture.channels)];
    const double y = expected.samples[static_cast<std::size_t>(e * expected.channels)];
    xy += x * y;
    xx += x * x;
    yy += y * y;
  }
  return xx > 0 && yy > 0 ? xy / std::sqrt(xx * yy) : 0.0;
}
}  // namespace

double best_correlation(const Audio& capture, const Audio& expected, long search) {
  const long c0 = first_sound(capture, 1e-3f);
  const long e0 = first_sound(expected, 1e-3f);
  if (c0 < 0 || e0 < 0) return 0;
  double best = -1;
  for (long lag = c0 - e0 - search; lag <= c0 - e0 + search; ++lag)
    best = std::max(
        best, correlation_at(capture, expected, lag, 0, static_cast<long>(expected.frames()), 1));
  return best;
}

std::vector<double> window_correlations(const Audio& capture, const Audio& expected, long search,
                                        long window, long local) {
  std::vector<double> out;
  const long c0 = first_sound(capture, 1e-3f);
  const long e0 = first_sound(expected, 1e-3f);
  if (c0 < 0 || e0 < 0) return out;
  const long n = static_cast<long>(expected.frames());
  // The whole clip's alignment, first on every 4th frame, then refined around it.
  long best_lag = c0 - e0;
  double best = -2;
  for (long lag = c0 - e0 - search; lag <= c0 - e0 + search; ++lag)
    if (const double r = correlation_at(capture, expected, lag, 0, n, 4); r > best) {
      best = r;
      best_lag = lag;
    }
  for (long w0 = 0; w0 < n; w0 += window) {
    const long w1 = std::min(n, w0 + window);
    double energy = 0;
    for (long e = w0; e < w1; ++e) {
      const double y = expected.samples[static_cast<std::size_t>(e * expected.channels)];
      energy += y * y;
    }
    if (energy / static_cast<double>(w1 - w0) < 1e-6) continue;  // below -60 dBFS: no content
    double window_best = -2;
    for (long lag = best_lag - local; lag <= best_lag + local; ++lag)
      window_best = std::max(window_best, correlation_at(capture, expected, lag, w0, w1, 1));
    out.push_back(window_best);
  }
  return out;
}

double min_window_correlation(const Audio& capture, const Audio& expected, long search, long window,
                              long local) {
  const std::vector<double> all = window_correlations(capture, expected, search, window, local);
  return all.empty() ? 0.0 : *std::min_element(all.begin(), all.end());
}

}  // namespace rtpnode::systest
