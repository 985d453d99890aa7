// System-test harness: a private JACK dummy server, child processes (rtpnode, rtpsend,
// jack_capture), WAV I/O and the comparisons the system tests assert with.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace rtpnode::systest {

/// Interleaved float audio.
struct Audio {
  std::vector<float> samples;
  int rate = 0;
  int channels = 0;
  [[nodiscard]] std::size_t frames() const {
    return channels ? samples.size() / static_cast<std::size_t>(channels) : 0;
  }
};

Audio read_wav(const std::string& path);
/// Writes 16-bit PCM (samples must be multiples of 1/32768 to round-trip exactly).
void write_wav16(const std::string& path, const Audio& a);
/// Real recordings shipped by Debian packages (alsa-utils, asterisk-core-sounds-en-wav).
Audio load_recording(const std::string& path);
/// speexdsp resampling of float audio, as rtpnode does it (skip_zeros, given quality).
Audio resample(const Audio& in, int rate, int quality);

/// A child process with stdout+stderr captured to a log file, in a process group of its own;
/// on destruction the whole group is killed (what the process left running too).
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  /// Waits for exit up to `timeout`; returns the exit code, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void signal(int sig);
  /// The process id (also the thread id of its main thread).
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::string log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

/// A JACK dummy server with a unique name; sets JACK_DEFAULT_SERVER for this process and its
/// children. Period 1024 frames at 48 kHz (see ENVIRONMENT.md: few xruns at that size).
class JackServer {
 public:
  /// `playback_channels`: the dummy device's output ports (what PortAudio offers as channels).
  /// `name`: the server name; empty = unique per process and call. A server that a test kills
  /// (kill_now) must have a fixed name: JACK2 reclaims a dead server's slot in its shared
  /// registry (8 slots) only when a server of the same name starts again.
  explicit JackServer(const std::string& dir, int period = 1024, int playback_channels = 2,
                      const std::string& name = "");
  ~JackServer();
  [[nodiscard]] const std::string& name() const { return name_; }
  /// Waits until a port named `port` exists (jack_lsp), up to 10 s.
  bool wait_for_port(const std::string& port);
  /// Kills the server at once (SIGKILL), as a crash would, and reaps it. Its registry slot stays
  /// taken until a server of the same name starts: give such a server a fixed name.
  void kill_now();
  /// Starts the server again, same name and settings, after kill_now(); returns once clients
  /// can connect (jack_wait). Throws if it does not start within 15 s.
  void restart();
  /// Stops the server's process (SIGSTOP) for `duration`, then lets it go on (SIGCONT): a
  /// device that stalls, as a loaded machine's audio thread does. Clients see an xrun.
  void pause(std::chrono::milliseconds duration);

 private:
  void start();
  std::string name_;
  std::string dir_;
  std::vector<std::string> argv_;
  int starts_ = 0;
  std::unique_ptr<Process> jackd_;
};

/// Stops one thread `tid` of a child process for `duration` while its other threads run on
/// (ptrace PTRACE_SEIZE + PTRACE_INTERRUPT, then PTRACE_DETACH): a thread descheduled or
/// blocked, as a loaded machine does to it. Returns false (and stops nothing) if ptrace fails.
bool freeze_thread(pid_t tid, std::chrono::milliseconds duration);

/// A network namespace with only a loopback interface and a multicast route on it, so that
/// multicast never leaves the machine. Its multicast leaves from 127.0.0.1 (without `src`, the
/// kernel sends it from 0.0.0.0, which no source-specific join matches). Removed on destruction.
class LoopbackNamespace {
 public:
  LoopbackNamespace();
  ~LoopbackNamespace();
  LoopbackNamespace(const LoopbackNamespace&) = delete;
  LoopbackNamespace& operator=(const LoopbackNamespace&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
  bool ok_ = false;
};

/// `argv` run in network namespace `netns` (ip netns exec); unchanged when `netns` is empty.
std::vector<std::string> in_netns(const std::string& netns, std::vector<std::string> argv);

/// Resident set size of process `pid`, kB (VmRSS), or -1.
long rss_kb(pid_t pid);

/// Scratch directory unique to the running test, emptied at its first use in the test. Thread:
/// the test's own.
std::string test_dir();
/// Before a timing test runs again after a disturbed attempt: waits until one second passes in
/// which the CPUs lost less than `max_lost_percent` of their time to steal (the VM's host ran
/// something else) and I/O wait (/proc/stat), for at most `limit`. Returns that second's lost
/// share, %, or the last one measured when the limit passed. A CI run on 2026-12-02 had every
/// attempt of five system tests hit by one JACK xrun over ~4 minutes while steal was 4-12 %;
/// the same tests were clean right after. Test thread.
double wait_for_quiet_machine(std::chrono::seconds limit = std::chrono::seconds(60),
                              double max_lost_percent = 2.0);
/// Sends `bytes` from socket `fd` to 127.0.0.1:`port`; true when the kernel took all of it.
bool send_loopback(int fd, int port, std::span<const std::uint8_t> bytes);
/// A UDP socket bound to 127.0.0.1 on a free port, with a receive timeout; closed on destruction.
struct LoopbackUdp {
  explicit LoopbackUdp(std::chrono::milliseconds recv_timeout = std::chrono::milliseconds(100));
  ~LoopbackUdp();
  LoopbackUdp(const LoopbackUdp&) = delete;
  LoopbackUdp& operator=(const LoopbackUdp&) = delete;
  int fd = -1;
  int port = 0;
};
/// An even UDP port, free on 127.0.0.1 now together with the next one (RTCP), outside the kernel's
/// ephemeral range so that no sending or connecting socket can take it before the caller binds it.
/// Throws std::runtime_error when none is free.
int free_udp_port();
/// A TCP port free on 127.0.0.1 now (with the next one), outside the ephemeral range; as above.
int free_tcp_port();

struct HttpReply {
  int status = 0;  ///< 0: no answer (connection refused, closed or timed out)
  std::string body;
};
/// One HTTP/1.0 request to 127.0.0.1:`port` (`method` `path`), read until the server closes,
/// 3 s at most.
HttpReply http_request(int port, const std::string& method, const std::string& path);
/// Runs `command` with /bin/sh; returns its exit status and stdout.
std::pair<int, std::string> run_command(const std::string& command);

/// Sample-exact comparison of a capture against the expected output, period by period.
/// The capture may start and end with silence, and may miss whole periods (xruns): when a
/// frame mismatches, the alignment is searched again at +-k periods. Silent periods between
/// matching ones are skipped as gaps.
struct ExactMatch {
  std::size_t matched_frames = 0;  ///< capture frames equal to the expected ones, exactly
  std::size_t mismatched_frames = 0;
  int realignments = 0;               ///< whole-period shifts (xruns) absorbed
  std::size_t silent_gap_frames = 0;  ///< capture silent where sound was expected (periods JACK
                                      ///< dropped in an xrun)
  long first_offset = 0;              ///< capture frame index of expected frame 0
};
ExactMatch match_exact(const Audio& capture, const Audio& expected, int period,
                       float tolerance = 0.0f);

/// Best normalized cross-correlation of capture channel 0 against expected channel 0, over
/// alignments found from the first non-silent frames (+- search frames).
double best_correlation(const Audio& capture, const Audio& expected, long search);

/// Content check that tolerates slow sub-millisecond slewing (drift compensation trimming the
/// delay): channel 0 of `expected` is cut into `window` frames; each window with sound is
/// aligned on its own within +- `local` frames of the best whole-clip alignment (searched
/// +- `search` frames around the first sounds), and its normalized cross-correlation taken.
/// Returns the lowest over the windows (0 when nothing aligns).
double min_window_correlation(const Audio& capture, const Audio& expected, long search, long window,
                              long local);
/// The same windows' correlations, in order (empty when nothing aligns).
std::vector<double> window_correlations(const Audio& capture, const Audio& expected, long search,
                                        long window, long local);

}  // namespace rtpnode::systest
