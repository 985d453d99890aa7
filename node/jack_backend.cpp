#include "node/jack_backend.hpp"

#include <jack/jack.h>
#include <pthread.h>

#include <cstdlib>
#include <cstring>
#include <future>
#include <iostream>
#include <system_error>

#include "node/realtime.hpp"

namespace rtpnode {

namespace {

/// The ports `out_i` connects to: the physical playback ports, or those of JACK client `target`.
std::vector<std::string> playback_ports(jack_client_t* c, const std::string& target) {
  std::vector<std::string> names;
  const char** ports = target.empty()
                           ? jack_get_ports(c, nullptr, JACK_DEFAULT_AUDIO_TYPE,
                                            JackPortIsPhysical | JackPortIsInput)
                           : jack_get_ports(c, nullptr, JACK_DEFAULT_AUDIO_TYPE, JackPortIsInput);
  for (const char** p = ports; p != nullptr && *p != nullptr; ++p) {
    const std::string name = *p;
    if (target.empty() || name.rfind(target + ":", 0) == 0) names.push_back(name);
  }
  if (ports != nullptr) jack_free(static_cast<void*>(ports));
  return names;
}

}  // namespace

JackBackend::JackBackend(const NodeConfig& cfg)
    : client_name_(cfg.client_name.empty() ? "rtpnode" : cfg.client_name),
      target_(cfg.device),
      channels_(cfg.channels) {
  jack_status_t status{};
  jack_client_t* c = jack_client_open(client_name_.c_str(), JackNoStartServer, &status);
  if (c == nullptr) {
    const char* server = std::getenv("JACK_DEFAULT_SERVER");
    throw DeviceError(std::string("cannot connect to the JACK server '") +
                      (server ? server : "default") +
                      "' (is it running? JACK_DEFAULT_SERVER names it; without JACK use "
                      "--host-api alsa)");
  }
  shared_->client = c;
  client_name_ = jack_get_client_name(c);
  rate_ = jack_get_sample_rate(c);
  shared_->rate = rate_;
  period_ = static_cast<int>(jack_get_buffer_size(c));
  auto fail = [&](const std::string& why) {
    jack_client_close(c);
    shared_->client = nullptr;
    throw DeviceError(why);
  };
  if (cfg.rate > 0 && cfg.rate != rate_)
    fail("--rate " + std::to_string(static_cast<int>(cfg.rate)) + ": the JACK server runs at " +
         std::to_string(static_cast<int>(rate_)) + " Hz (JACK fixes the rate; omit --rate)");
  targets_ = playback_ports(c, target_);
  if (targets_.empty())
    fail(target_.empty() ? std::string("the JACK server has no physical playback ports (name "
                                       "a client to connect to with --device, see jack_lsp)")
                         : "--device '" + target_ +
                               "': no JACK client of that name has input ports (see jack_lsp)");
  if (static_cast<int>(targets_.size()) < channels_)
    fail("--channels " + std::to_string(channels_) + " exceeds the " +
         std::to_string(targets_.size()) + " playback ports of '" +
         targets_[0].substr(0, targets_[0].find(':')) + "'");
  targets_.resize(static_cast<std::size_t>(channels_));
}

JackBackend::~JackBackend() {
  (void)shutdown(std::chrono::seconds(2), !stream_active());
}

void JackBackend::open(Mixer& mixer) {
  Shared& s = *shared_;
  s.mixer = &mixer;
  for (const std::string& t : targets_)
    if (jack_port_t* p = jack_port_by_name(s.client, t.c_str())) s.targets.push_back(p);
  s.interleaved.assign(
      static_cast<std::size_t>(kMaxBlockFrames) * static_cast<std::size_t>(channels_), 0.0f);
  for (int i = 0; i < channels_; ++i) {
    const std::string name = "out_" + std::to_string(i);
    jack_port_t* p =
        jack_port_register(s.client, name.c_str(), JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
    if (p == nullptr) throw DeviceError("cannot register JACK port " + client_name_ + ":" + name);
    s.ports.push_back(p);
  }
  jack_set_process_callback(s.client, &JackBackend::process, &s);
  jack_on_info_shutdown(
      s.client,
      [](jack_status_t, const char*, void* arg) {
        static_cast<Shared*>(arg)->lost.store(true, std::memory_order_release);
      },
      &s);
  jack_set_xrun_callback(
      s.client,
      [](void* arg) {
        static_cast<Shared*>(arg)->xruns.fetch_add(1, std::memory_order_relaxed);
        return 0;
      },
      &s);
  jack_set_latency_callback(
      s.client,
      [](jack_latency_callback_mode_t mode, void* arg) {
        if (mode == JackPlaybackLatency) refresh_latency(*static_cast<Shared*>(arg));
      },
      &s);
}

void JackBackend::set_thread_init(void (*fn)(void*), void* arg) noexcept {
  Shared& s = *shared_;
  s.thread_init = fn;
  s.thread_init_arg = arg;
  if (s.client != nullptr)
    jack_set_thread_init_callback(s.client, &JackBackend::on_thread_init, &s);
}

void JackBackend::on_thread_init(void* shared) noexcept {
  // pthread_create stores the new thread's id before the thread runs, so the process thread
  // already compares equal here; jack2's message-buffer thread never does.
  auto& s = *static_cast<Shared*>(shared);
  if (s.thread_init != nullptr && pthread_equal(pthread_self(), jack_client_thread_id(s.client)))
    s.thread_init(s.thread_init_arg);
}

void JackBackend::start() {
  Shared& s = *shared_;
  // The target ports' latency is theirs (the driver's), readable before we connect to them.
  refresh_latency(s);
  if (jack_activate(s.client) != 0) throw DeviceError("cannot activate the JACK client");
  active_ = true;
  // The cycles run from here on, and the loop must render for them: connecting waits for the
  // server's next graph change (26 ms with 1024-frame periods here) and recomputing the
  // latencies for another cycle (24 ms), measured; blocking the loop for both made the first
  // source after an idle suspension underrun. They run on their own thread, which shutdown()
  // waits for before closing the client.
  try {
    s.connected = std::async(std::launch::async, [&s, targets = targets_] {
                    connect_ports(s, targets);
                  }).share();
  } catch (const std::system_error&) {
    connect_ports(s, targets_);  // no thread to be had: connect here
  }
}

void JackBackend::connect_ports(Shared& s, const std::vector<std::string>& targets) noexcept {
  for (std::size_t i = 0; i < targets.size() && i < s.ports.size(); ++i) {
    const int e = jack_connect(s.client, jack_port_name(s.ports[i]), targets[i].c_str());
    if (e != 0 && e != EEXIST)
      std::cerr << "rtpnode: warning: cannot connect " << jack_port_name(s.ports[i]) << " to "
                << targets[i] << "\n";
  }
  jack_recompute_total_latencies(s.client);
  refresh_latency(s);
}

void JackBackend::refresh_latency(Shared& s) noexcept {
  // What lies between the connected playback port and the DAC (as PortAudio reads it); our own
  // ports carry the same range on, as a JACK client with a latency callback must.
  if (s.targets.empty()) return;
  jack_latency_range_t r{};
  jack_port_get_latency_range(s.targets[0], JackPlaybackLatency, &r);
  for (jack_port_t* p : s.ports) jack_port_set_latency_range(p, JackPlaybackLatency, &r);
  s.latency_frames.store(r.min, std::memory_order_relaxed);
}

RTPNODE_REALTIME int JackBackend::process(std::uint32_t frames, void* arg) noexcept {
  Shared& s = *static_cast<Shared*>(arg);
  BlockTiming t;
  // The cycle's start: JACK's own estimate (jack_get_cycle_times: the server's, the same for
  // every client of the cycle) when it is at most kMaxCycleLagUs before now, else now
  // (jack_get_time: CLOCK_MONOTONIC through the vDSO).
  //  - Why the server's: a client runs after those before it in the graph, so its wake-up
  //    lags the cycle start by a share of the cycle that depends on its place in the graph and
  //    the machine's load. Measured with four rtpnodes on one dummy server (issue #19,
  //    MultiRoom test): the nodes' maps of the same device disagreed by 1-5 frames.
  //  - Why the bound: JACK's DLL does not re-anchor after a stall of the server; measured here
  //    after a 50 ms SIGSTOP of a 256-frame dummy server, its cycle start lagged the wake-up by
  //    44 ms and closed the gap at 0.25 ms per cycle, which DeviceClock would take for a device
  //    creeping slowly instead of one jump. Beyond the bound, the wake-up stands in for it.
  // Thread: JACK's process thread. jack_get_cycle_times reads the client's shared memory.
  const jack_time_t now = jack_get_time();
  jack_nframes_t cycle_frames = 0;
  jack_time_t cycle_usecs = 0, next_usecs = 0;
  float period_usecs = 0;
  jack_time_t start = now;
  if (jack_get_cycle_times(s.client, &cycle_frames, &cycle_usecs, &next_usecs, &period_usecs) ==
          0 &&
      cycle_usecs <= now && now - cycle_usecs <= kMaxCycleLagUs)
    start = cycle_usecs;
  t.current_time = static_cast<double>(start) * 1e-6;
  t.dac_time = t.current_time +
               static_cast<double>(s.latency_frames.load(std::memory_order_relaxed)) / s.rate;
  t.xrun = s.xruns.exchange(0, std::memory_order_relaxed) != 0;
  const std::size_t channels = s.ports.size();
  if (frames > kMaxBlockFrames) {  // a server period beyond what was allocated: silence
    for (jack_port_t* p : s.ports)
      std::memset(jack_port_get_buffer(p, frames), 0, sizeof(float) * frames);
    return 0;
  }
  process_block(*s.mixer, s.times, s.interleaved.data(), static_cast<frames_t>(frames), t);
  for (std::size_t c = 0; c < channels; ++c) {
    auto* out = static_cast<float*>(jack_port_get_buffer(s.ports[c], frames));
    const float* in = s.interleaved.data() + c;
    for (std::uint32_t i = 0; i < frames; ++i) out[i] = in[i * channels];
  }
  return 0;
}

bool JackBackend::shutdown(std::chrono::milliseconds bound, bool) noexcept {
  if (shut_down_) return true;
  shut_down_ = true;
  if (shared_->client == nullptr) return true;
  const bool done = run_within(
      [shared = shared_, active = active_] {
        // After the server is gone the client is a zombie: deactivating it would talk to no one.
        if (shared->connected.valid()) shared->connected.wait();
        if (active && !shared->lost.load(std::memory_order_acquire))
          jack_deactivate(shared->client);
        jack_client_close(shared->client);
      },
      bound);
  active_ = false;
  return done;
}

bool JackBackend::stream_active() const noexcept {
  return active_ && !shut_down_ && !shared_->lost.load(std::memory_order_acquire);
}

double JackBackend::stream_time() const noexcept {
  return static_cast<double>(jack_get_time()) * 1e-6;
}

double JackBackend::output_latency() const noexcept {
  return static_cast<double>(shared_->latency_frames.load(std::memory_order_relaxed)) / rate_;
}

double JackBackend::cpu_load() const noexcept {
  if (!stream_active()) return 0.0;
  return static_cast<double>(jack_cpu_load(shared_->client)) / 100.0;
}

std::string JackBackend::describe() const {
  const std::string to = targets_.empty() ? target_ : targets_[0].substr(0, targets_[0].find(':'));
  return "JACK (libjack): " + client_name_ + " -> " + to + " (" +
         std::to_string(static_cast<int>(rate_)) + " Hz, " + std::to_string(channels_) + " ch)";
}

}  // namespace rtpnode
