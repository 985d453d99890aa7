// Real-time safety of the audio path (DESIGN.md "Threading rules"): with the allocator
// (malloc, calloc, realloc, free, posix_memalign, aligned_alloc, operator new/delete) and the
// pthread mutex functions interposed, the mixer runs thousands of blocks for several loaded
// sources while another thread feeds their rings and adds/removes streams. Any such call made on
// the audio thread is counted; the test fails on one.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "jitter/jitter_buffer.hpp"
#include "jitter/playout.hpp"
#include "node/audio_backend.hpp"
#include "node/config.hpp"
#include "node/jack_backend.hpp"
#include "node/mixer.hpp"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);
void* __libc_memalign(size_t, size_t);
}

namespace {
thread_local bool t_audio_thread = false;
std::atomic<long> g_forbidden{0};
inline void note() {
  if (t_audio_thread) g_forbidden.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t n) {
  note();
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  note();
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  note();
  return __libc_realloc(p, n);
}
void free(void* p) {
  note();
  __libc_free(p);
}
int posix_memalign(void** out, size_t align, size_t n) {
  note();
  *out = __libc_memalign(align, n);
  return *out ? 0 : ENOMEM;
}
void* aligned_alloc(size_t align, size_t n) {
  note();
  return __libc_memalign(align, n);
}

int pthread_mutex_lock(pthread_mutex_t* m) {
  note();
  static auto real =
      reinterpret_cast<int (*)(pthread_mutex_t*)>(dlsym(RTLD_NEXT, "pthread_mutex_lock"));
  return real(m);
}
int pthread_mutex_trylock(pthread_mutex_t* m) {
  note();
  static auto real =
      reinterpret_cast<int (*)(pthread_mutex_t*)>(dlsym(RTLD_NEXT, "pthread_mutex_trylock"));
  return real(m);
}
int pthread_mutex_unlock(pthread_mutex_t* m) {
  note();
  static auto real =
      reinterpret_cast<int (*)(pthread_mutex_t*)>(dlsym(RTLD_NEXT, "pthread_mutex_unlock"));
  return real(m);
}
}

void* operator new(size_t n) {
  note();
  if (void* p = __libc_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  return operator new(n);
}
void* operator new(size_t n, std::align_val_t a) {
  note();
  if (void* p = __libc_memalign(static_cast<size_t>(a), n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  note();
  __libc_free(p);
}
void operator delete[](void* p) noexcept {
  note();
  __libc_free(p);
}
void operator delete(void* p, size_t) noexcept {
  note();
  __libc_free(p);
}
void operator delete[](void* p, size_t) noexcept {
  note();
  __libc_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  note();
  __libc_free(p);
}
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  note();
  __libc_free(p);
}

using namespace rtpnode;

TEST(RealtimeSafety, InterposerCatchesAnAllocationOnTheAudioThread) {
  // The detector itself must work, or the next test proves nothing.
  g_forbidden = 0;
  std::thread t([] {
    t_audio_thread = true;
    void* volatile p = std::malloc(64);
    std::free(p);
    void* q = ::operator new(16);  // explicit calls: not subject to allocation elision
    ::operator delete(q);
    t_audio_thread = false;
  });
  t.join();
  EXPECT_EQ(g_forbidden.load(), 4);
}

TEST(RealtimeSafety, LoadedMixerMakesNoAllocationOrLockCall) {
  constexpr int kChannels = 2;
  constexpr int kStreams = 16;
  constexpr int kBlocks = 5000;
  Mixer mixer(kChannels, kStreams + 4, 240);  // 5 ms ramps, as the node runs it
  std::vector<std::unique_ptr<PlayoutStream>> streams;
  for (int i = 0; i < kStreams; ++i)
    streams.push_back(std::make_unique<PlayoutStream>(i + 1, 1 + i % 2, 8192, i * 37));
  for (auto& s : streams) mixer.add(s.get());
  // Audio queued before the threads start: the audio thread runs 5000 blocks unpaced (a few ms)
  // and on a loaded machine may finish before the feeder thread is first scheduled.
  {
    const std::vector<float> prefill(4096 * 2, 0.25f);
    for (auto& s : streams)
      s->ring.push(prefill.data(), static_cast<std::size_t>(4096 * s->channels));
  }
  // A stream that joins and leaves while the mixer runs.
  auto extra = std::make_unique<PlayoutStream>(99, 2, 4096, 0);

  std::atomic<bool> done{false};
  std::atomic<long> feeder_blocks{0};
  std::thread loop_thread([&] {
    std::vector<float> chunk(256 * 2, 0.25f);
    bool extra_in = false;
    while (!done.load()) {
      for (auto& s : streams)
        s->ring.push(chunk.data(), static_cast<std::size_t>(256 * s->channels));
      // Gain ramps, mutes and route switches land inside the audio thread's blocks.
      const frames_t now = mixer.position().frame;
      if (feeder_blocks % 7 == 0)
        mixer.set_gain(streams[0].get(), feeder_blocks % 14 == 0 ? 0.0f : 0.5f, now + 100);
      if (feeder_blocks % 11 == 0)
        mixer.set_route(
            streams[1].get(),
            Route::to_channels(streams[1]->channels, {static_cast<int>(feeder_blocks % 2)}),
            now + 50);
      if (++feeder_blocks % 50 == 0) {
        if (extra_in) {
          mixer.remove(extra.get(), mixer.position().frame + 300);  // fades out, then detaches
        } else if (mixer.take_retired() == extra.get() || feeder_blocks == 50) {
          mixer.add(extra.get());
        }
        extra_in = !extra_in;
      }
      while (mixer.take_retired() != nullptr) {
      }
      std::this_thread::yield();
    }
  });

  while (feeder_blocks.load() == 0) std::this_thread::yield();  // both threads run from here on
  g_forbidden = 0;
  CallbackTimes times;
  std::thread audio_thread([&] {
    std::vector<float> out(4096 * kChannels);  // allocated before the audio thread is marked
    const int sizes[] = {256, 64, 333, 1, 4096, 128};
    t_audio_thread = true;
    for (int b = 0; b < kBlocks; ++b) {
      const int n = sizes[b % 6];
      // What the PortAudio callback runs: the mix and its duration histogram.
      process_block(mixer, times, out.data(), n,
                    BlockTiming{b * 0.005, b * 0.005 + 0.01, b % 100 == 0});
      (void)mixer.position();
    }
    t_audio_thread = false;
  });
  audio_thread.join();
  done = true;
  loop_thread.join();
  EXPECT_EQ(g_forbidden.load(), 0) << "allocation or mutex call on the audio thread";
  EXPECT_EQ(mixer.position().callbacks, static_cast<std::uint64_t>(kBlocks));
  EXPECT_EQ(times.count.load(), static_cast<std::uint64_t>(kBlocks));
  EXPECT_GT(feeder_blocks.load(), 0);
  std::uint64_t played = 0;
  for (auto& s : streams) played += s->frames_played.load();
  EXPECT_GT(played, 0u);  // the streams were really mixed
}

extern char** environ;

// The JACK backend's process callback (issue #15): JACK's real-time thread, marked from its
// first instant (jack_set_thread_init_callback), runs JackBackend::process -- cycle time, the
// mix, deinterleaving into the port buffers -- for a second of 256-frame cycles on a JACK dummy
// server while the test thread feeds a stream and adds and removes another. Every allocation
// or mutex call on that thread is counted, libjack's own between cycles included.
TEST(RealtimeSafety, JackProcessCallbackMakesNoAllocationOrLockCall) {
  const std::string server = "rtpnode-rt-safety-" + std::to_string(getpid());
  setenv("JACK_DEFAULT_SERVER", server.c_str(), 1);
  setenv("JACK_NO_START_SERVER", "1", 1);
  setenv("JACK_NO_AUDIO_RESERVATION", "1", 1);
  std::vector<std::string> args{"jackd", "-n", server};
  if (geteuid() == 0)
    args.insert(args.end(), {"-R", "-P", "70"});
  else
    args.emplace_back("--no-realtime");
  args.insert(args.end(), {"-d", "dummy", "-r", "48000", "-p", "256", "-C", "2", "-P", "2"});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t jackd = -1;
  ASSERT_EQ(posix_spawnp(&jackd, "jackd", nullptr, nullptr, argv.data(), environ), 0);
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  } reap{jackd};
  ASSERT_EQ(std::system("jack_wait -w -t 10 >/dev/null 2>&1"), 0) << "no JACK dummy server";

  NodeConfig cfg;
  cfg.host_api = "jack";
  cfg.client_name = "rt-safety";
  Mixer mixer(2, 8, 240);
  PlayoutStream fed(1, 2, 48000, 0), extra(2, 1, 4096, 0);
  const std::vector<float> chunk(256 * 2, 0.25f);
  for (int i = 0; i < 20; ++i) fed.ring.push(chunk.data(), chunk.size());
  mixer.add(&fed);
  JackBackend jack(cfg);
  jack.open(mixer);
  static std::atomic<int> marked{0};
  jack.set_thread_init(
      [](void*) {
        t_audio_thread = true;
        ++marked;
      },
      nullptr);
  g_forbidden = 0;
  jack.start();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  bool extra_in = false;
  for (int i = 0; std::chrono::steady_clock::now() < until; ++i) {
    fed.ring.push(chunk.data(), chunk.size());
    if (i % 20 == 0) {
      if (extra_in)
        mixer.remove(&extra, mixer.position().frame + 300);
      else if (i == 0 || mixer.take_retired() == &extra)
        mixer.add(&extra);
      extra_in = !extra_in;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::uint64_t cycles = mixer.position().callbacks;
  const long forbidden = g_forbidden.load();
  EXPECT_TRUE(jack.shutdown(std::chrono::seconds(2), false));
  EXPECT_EQ(forbidden, 0) << "allocation or mutex call on JACK's real-time thread";
  EXPECT_GE(marked.load(), 1) << "JACK's thread was never marked: the check saw nothing";
  EXPECT_GE(cycles, 100u) << "the JACK cycles ran (187 a second at 256 frames)";
  EXPECT_GT(fed.frames_played.load(), 0u);
}

TEST(RealtimeSafety, JitterBufferAndPlayoutAllocateNothingOnceWarm) {
  // Issue #3: no allocation per packet. The loop thread is not real time, but a source that
  // allocates per packet would fragment a Raspberry Pi's heap over weeks. Issue #16 finding 4:
  // the jitter buffer allocates a slot's payload buffer the first time the slot holds a payload
  // larger than before, so it allocates while its slots are first used, then never.
  JitterBufferConfig jc;
  jc.clock_rate = 48000;
  jc.max_payload_bytes = 1500;
  jc.capacity_packets = 32;  // as Source starts it
  jc.expand_ticks = 240;
  JitterBuffer jb(jc);
  PlayoutConfig pc_cfg;
  pc_cfg.clock_rate = 48000;
  PlayoutController pc(pc_cfg);
  const std::vector<std::uint8_t> payload(160, 1);
  g_forbidden = 0;
  mono_ns_t written = 60'000'000;
  long non_decode_steps = 0;
  for (ext_seq_t seq = 0; seq < 20000; ++seq) {
    // Warm after every one of the 32 slots has held a packet.
    if (seq == 2 * static_cast<ext_seq_t>(jb.capacity())) t_audio_thread = true;
    const mono_ns_t arrival = seq * 20'000'000 + (seq * 7919 % 37) * 1'000'000;
    if (seq % 31 != 5 &&
        jb.insert(seq, seq * 960, false, payload, arrival, jb.cursor_ts()) == InsertResult::stored)
      pc.on_packet(seq * 960, arrival, 960);
    for (;;) {
      const mono_ns_t ahead = written - arrival;
      const mono_ns_t delay = pc.delay_ns(written, jb.cursor_ts());
      const auto a =
          jb.next(ahead > 0 ? jb.cursor_ts() - 1 : jb.cursor_ts() + 1, pc.may_expand(delay, 960));
      if (a.kind == JitterBuffer::Action::Kind::wait) break;
      const ext_ts_t ticks = a.kind == JitterBuffer::Action::Kind::decode ? 960 : a.ticks;
      non_decode_steps += a.kind != JitterBuffer::Action::Kind::decode;
      if (a.kind == JitterBuffer::Action::Kind::gap)
        (void)pc.adjust_gap(ticks * 20'833, delay, 960);
      (void)pc.update_speed(arrival, delay, 960);
      written += ticks * 20'833;
      jb.played(a, ticks);
    }
  }
  t_audio_thread = false;
  EXPECT_EQ(g_forbidden.load(), 0);
  EXPECT_GT(non_decode_steps, 500);  // losses were concealed or expanded, not only decodes
  EXPECT_EQ(jb.stored_bytes(), jb.capacity() * payload.size());  // one buffer per slot
}
