#include "node/audio_backend.hpp"

#include <alsa/asoundlib.h>
#include <jack/jack.h>
#include <pa_linux_alsa.h>
#include <portaudio.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <iomanip>
#include <ctime>
#include <future>
#include <memory>
#include <thread>
#include <utility>

#include <unistd.h>

#include "node/file_backend.hpp"
#include "node/jack_backend.hpp"
#include "node/realtime.hpp"
#include "node/stats_model.hpp"

namespace rtpnode {

namespace {

// PortAudio probes every ALSA card at Pa_Initialize; on a machine without one, alsa-lib prints
// dozens of harmless "Cannot get card index" lines. They are not ours to show.
void silent_alsa_error(const char*, int, const char*, int, const char*, ...) {}
// Likewise libjack reports "cannot connect to server" while PortAudio probes for a JACK server;
// whether JACK is usable is what --host-api and the errors below tell the user.
void silent_jack_message(const char*) {}

void silence_library_chatter() {
  snd_lib_error_set_handler(silent_alsa_error);
  jack_set_error_function(silent_jack_message);
  jack_set_info_function(silent_jack_message);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool contains_ci(const std::string& hay, const std::string& needle) {
  return lower(hay).find(lower(needle)) != std::string::npos;
}

/// Audio thread; vDSO clock read, no system call.
RTPNODE_REALTIME std::uint64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

/// Audio thread; wait-free apart from Mixer::process's bounded work.
RTPNODE_REALTIME int pa_callback(const void*, void* output, unsigned long frames,
                                 const PaStreamCallbackTimeInfo* time, PaStreamCallbackFlags flags,
                                 void* user) noexcept {
  auto* ctx = static_cast<const std::pair<Mixer*, CallbackTimes*>*>(user);
  BlockTiming t;
  t.current_time = time ? time->currentTime : 0.0;
  t.dac_time = time ? time->outputBufferDacTime : 0.0;
  t.xrun = (flags & (paOutputUnderflow | paOutputOverflow)) != 0;
  process_block(*ctx->first, *ctx->second, static_cast<float*>(output),
                static_cast<frames_t>(frames), t);
  return paContinue;
}

void check(PaError e, const std::string& what) {
  if (e != paNoError) throw DeviceError(what + ": " + Pa_GetErrorText(e));
}

}  // namespace

std::unique_ptr<AudioBackend> make_audio_backend(const NodeConfig& cfg) {
  if (!cfg.output.empty()) return std::make_unique<FileBackend>(FileBackend::options_from(cfg));
  // JACK through libjack (jack_backend.hpp says why not PortAudio's JACK host API).
  if (contains_ci(cfg.host_api, "jack")) {
    silence_library_chatter();
    return std::make_unique<JackBackend>(cfg);
  }
  return std::make_unique<PortAudioBackend>(cfg);
}

RTPNODE_REALTIME void CallbackTimes::record(std::uint64_t ns) noexcept {
  const double us = static_cast<double>(ns) / 1000.0;
  std::size_t b = 0;
  while (b < kBoundsUs.size() && us > kBoundsUs[b]) ++b;
  buckets[b].store(buckets[b].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  sum_ns.store(sum_ns.load(std::memory_order_relaxed) + ns, std::memory_order_relaxed);
  if (ns > max_ns.load(std::memory_order_relaxed)) max_ns.store(ns, std::memory_order_relaxed);
  count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void add_callback_times(NodeSnapshot& n, const CallbackTimes& ct) {
  for (std::size_t i = 0; i < n.callback_buckets.size(); ++i)
    n.callback_buckets[i] = ct.buckets[i].load(std::memory_order_relaxed);
  n.callback_count = ct.count.load(std::memory_order_acquire);
  n.callback_sum_s = static_cast<double>(ct.sum_ns.load(std::memory_order_relaxed)) * 1e-9;
  n.callback_max_ms = static_cast<double>(ct.max_ns.load(std::memory_order_relaxed)) * 1e-6;
}

RTPNODE_REALTIME void process_block(Mixer& mixer, CallbackTimes& times, float* out, frames_t frames,
                                    const BlockTiming& timing) noexcept {
  const std::uint64_t t0 = monotonic_ns();
  mixer.process(out, frames, timing);
  times.record(monotonic_ns() - t0);
}

/// Pa_Initialize with PortAudio's JACK host API kept from the JACK server: rtpnode plays to JACK
/// through libjack (jack_backend.hpp), and once a server PortAudio's JACK host API joined dies,
/// Pa_Terminate aborts the process (pa_jack.c Terminate asserts that jack_deactivate on the dead
/// client succeeds), so a node on ALSA could neither reopen its device nor exit cleanly. The
/// server is hidden by naming one that does not run while PortAudio initialises. Loop/main
/// thread, while no other thread of ours reads the environment.
static PaError initialize_portaudio_without_jack() {
  const char* server = std::getenv("JACK_DEFAULT_SERVER");
  const std::string saved = server ? server : "";
  setenv("JACK_DEFAULT_SERVER",
         ("rtpnode-hides-jack-from-portaudio-" + std::to_string(getpid())).c_str(), 1);
  const PaError e = Pa_Initialize();
  if (server)
    setenv("JACK_DEFAULT_SERVER", saved.c_str(), 1);
  else
    unsetenv("JACK_DEFAULT_SERVER");
  return e;
}

PortAudioBackend::PortAudioBackend(const NodeConfig& cfg)
    : channels_(cfg.channels), period_(cfg.period), rt_priority_(cfg.rt_priority) {
  silence_library_chatter();
  check(initialize_portaudio_without_jack(), "PortAudio initialisation failed");

  int api = Pa_GetDefaultHostApi();
  if (!cfg.host_api.empty()) {
    api = -1;
    for (int i = 0; i < Pa_GetHostApiCount(); ++i)
      if (contains_ci(Pa_GetHostApiInfo(i)->name, cfg.host_api)) api = i;
    if (api < 0) {
      std::string names;
      for (int i = 0; i < Pa_GetHostApiCount(); ++i)
        names += std::string(i ? ", " : "") + Pa_GetHostApiInfo(i)->name;
      Pa_Terminate();
      throw DeviceError("--host-api '" + cfg.host_api + "' matches no host API (available: " +
                        names + "). Is the JACK server running?");
    }
  }
  const PaHostApiInfo* api_info = Pa_GetHostApiInfo(api);
  if (!api_info) {
    Pa_Terminate();
    throw DeviceError(
        "no audio host API available (no sound card? start a JACK server and use --host-api jack)");
  }
  host_api_name_ = api_info->name;
  host_api_type_ = api_info->type;

  if (cfg.device.empty()) {
    device_ = api_info->defaultOutputDevice;
  } else {
    int index = -1;
    auto r = std::from_chars(cfg.device.data(), cfg.device.data() + cfg.device.size(), index);
    if (r.ec == std::errc{} && r.ptr == cfg.device.data() + cfg.device.size()) {
      if (index < 0 || index >= Pa_GetDeviceCount()) index = -1;
    } else {
      index = -1;
      for (int i = 0; i < Pa_GetDeviceCount(); ++i) {
        const PaDeviceInfo* d = Pa_GetDeviceInfo(i);
        if (d->hostApi == api && d->maxOutputChannels > 0 && contains_ci(d->name, cfg.device)) {
          index = i;
          break;
        }
      }
    }
    device_ = index;
    // ALSA: any PCM name (hw:1,0, plughw:CARD=DAC, default, jack, one from ~/.asoundrc) opens
    // directly, listed or not (a device that appears later, a PCM PortAudio did not probe).
    if (device_ < 0 && host_api_type_ == paALSA) {
      alsa_pcm_ = cfg.device;
      device_name_ = cfg.device;
      rate_ = cfg.rate > 0 ? cfg.rate : 48000.0;
      return;
    }
  }
  if (device_ < 0 || Pa_GetDeviceInfo(device_)->maxOutputChannels <= 0) {
    Pa_Terminate();
    throw DeviceError(
        cfg.device.empty()
            ? "host API '" + host_api_name_ + "' has no default output device (see --list-devices)"
            : "--device '" + cfg.device + "' is not an output device (see --list-devices)");
  }
  const PaDeviceInfo* info = Pa_GetDeviceInfo(device_);
  device_name_ = info->name;
  rate_ = cfg.rate > 0 ? cfg.rate : info->defaultSampleRate;
  if (channels_ > info->maxOutputChannels) {
    const int max = info->maxOutputChannels;
    Pa_Terminate();
    throw DeviceError("--channels " + std::to_string(channels_) + " exceeds the " +
                      std::to_string(max) + " output channels of '" + device_name_ + "'");
  }
}

PortAudioBackend::~PortAudioBackend() {
  (void)shutdown(std::chrono::seconds(2), !stream_active());
}

bool PortAudioBackend::shutdown(std::chrono::milliseconds bound, bool device_gone) noexcept {
  if (shut_down_) return true;
  shut_down_ = true;
  const bool done = run_within(
      [stream = stream_, started = started_, device_gone] {
        if (stream != nullptr) {
          if (started) {
            if (device_gone)
              Pa_AbortStream(stream);
            else
              Pa_StopStream(stream);
          }
          Pa_CloseStream(stream);
        }
        Pa_Terminate();
      },
      bound);
  started_ = false;
  stream_ = nullptr;  // the queries must not touch a stream being closed
  return done;
}

bool run_within(std::function<void()> work, std::chrono::milliseconds bound) noexcept {
  try {
    auto done = std::make_shared<std::promise<void>>();
    std::future<void> finished = done->get_future();
    std::thread([work = std::move(work), done] {
      work();
      done->set_value();
    }).detach();
    return finished.wait_for(bound) == std::future_status::ready;
  } catch (const std::exception&) {
    return false;  // no thread could be started: leave the device to the process exit
  }
}

bool PortAudioBackend::stream_active() const noexcept {
  return stream_ != nullptr && Pa_IsStreamActive(stream_) == 1;
}

void PortAudioBackend::list_devices(std::ostream& os) {
  silence_library_chatter();
  if (Pa_Initialize() != paNoError) {
    os << "PortAudio initialisation failed\n";
    return;
  }
  os << "index  host API                    channels  rate     name\n";
  for (int i = 0; i < Pa_GetDeviceCount(); ++i) {
    const PaDeviceInfo* d = Pa_GetDeviceInfo(i);
    if (d->maxOutputChannels <= 0) continue;
    const bool def = i == Pa_GetHostApiInfo(d->hostApi)->defaultOutputDevice;
    os << std::setw(5) << i << "  " << std::left << std::setw(28)
       << Pa_GetHostApiInfo(d->hostApi)->name << std::right << std::setw(8) << d->maxOutputChannels
       << "  " << std::setw(7) << d->defaultSampleRate << "  " << d->name
       << (def ? "  (default)" : "") << "\n";
  }
  Pa_Terminate();
}

void PortAudioBackend::open(Mixer& mixer) {
  context_ = {&mixer, &times_};
  PaStreamParameters out{};
  out.device = device_;
  out.channelCount = channels_;
  out.sampleFormat = paFloat32;
  PaAlsaStreamInfo alsa{};
  if (!alsa_pcm_.empty()) {
    PaAlsa_InitializeStreamInfo(&alsa);
    alsa.deviceString = alsa_pcm_.c_str();
    out.device = paUseHostApiSpecificDeviceSpecification;
    out.hostApiSpecificStreamInfo = &alsa;
    out.suggestedLatency = 0.02;  // ALSA's period and buffer then follow --period
  } else {
    out.suggestedLatency = Pa_GetDeviceInfo(device_)->defaultLowOutputLatency;
  }
  const PaError e = Pa_OpenStream(
      &stream_, nullptr, &out, rate_,
      period_ > 0 ? static_cast<unsigned long>(period_) : paFramesPerBufferUnspecified,
      paClipOff | paDitherOff, pa_callback, &context_);
  if (e != paNoError) {
    stream_ = nullptr;
    throw DeviceError("cannot open '" + device_name_ + "' at " +
                      std::to_string(static_cast<int>(rate_)) + " Hz, " +
                      std::to_string(channels_) + " ch: " + Pa_GetErrorText(e) +
                      " (check --rate, --channels, --period; a JACK server fixes its own rate)");
  }
  if (const PaStreamInfo* si = Pa_GetStreamInfo(stream_)) rate_ = si->sampleRate;
  // --rt-priority on ALSA: PortAudio's callback thread at SCHED_FIFO (JACK: its own RT thread).
  if (rt_priority_ > 0 && host_api_type_ == paALSA) PaAlsa_EnableRealtimeScheduling(stream_, 1);
}

void PortAudioBackend::start() {
  check(Pa_StartStream(stream_), "cannot start the audio stream on '" + device_name_ + "'");
  started_ = true;
}

double PortAudioBackend::stream_time() const noexcept {
  return stream_ ? Pa_GetStreamTime(stream_) : 0.0;
}

double PortAudioBackend::output_latency() const noexcept {
  const PaStreamInfo* si = stream_ ? Pa_GetStreamInfo(stream_) : nullptr;
  return si ? si->outputLatency : 0.0;
}

double PortAudioBackend::cpu_load() const noexcept {
  return stream_ ? Pa_GetStreamCpuLoad(stream_) : 0.0;
}

std::string PortAudioBackend::describe() const {
  return host_api_name_ + ": " + device_name_ + " (" + std::to_string(static_cast<int>(rate_)) +
         " Hz, " + std::to_string(channels_) + " ch)";
}

}  // namespace rtpnode
