// A JACK client for the system tests that records one port of the graph together with the time
// of every cycle, so a test can say when (on CLOCK_MONOTONIC) each captured frame reaches the
// DAC under JACK's latency model. jack_capture only writes the samples.
#pragma once

#include <jack/jack.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rtpnode::systest {

class JackProbe {
 public:
  /// Connects a new client's input to `source_port` (e.g. "rtpn:out_0") on the JACK server named
  /// by JACK_DEFAULT_SERVER and records up to `max_seconds`. Throws if JACK refuses.
  JackProbe(const std::string& source_port, double max_seconds);
  ~JackProbe();
  JackProbe(const JackProbe&) = delete;
  JackProbe& operator=(const JackProbe&) = delete;

  /// Stops recording (the samples and times stay).
  void stop();
  [[nodiscard]] const std::vector<float>& samples() const { return samples_; }
  [[nodiscard]] std::size_t frames() const { return frames_.load(); }
  [[nodiscard]] int rate() const { return rate_; }
  /// The DAC instant of recorded frame `i`, ns on CLOCK_MONOTONIC: the start of its cycle plus
  /// its offset in the cycle plus the playback latency of the source port
  /// (jack_port_get_latency_range, JackPlaybackLatency: what JACK says lies between the port and
  /// the DAC). The cycle start is the driver's schedule, not the thread's wake-up: the earliest
  /// start the neighbouring cycles' wake-ups (jack_get_cycle_times) imply, so scheduling
  /// lateness does not count as delay.
  [[nodiscard]] std::int64_t dac_ns(std::size_t i) const;
  /// How late the thread of frame `i`'s cycle woke after the cycle's start (ns, >= 0).
  [[nodiscard]] std::int64_t wake_lateness_ns(std::size_t i) const;
  /// xruns JACK reported since the probe was activated (a late dummy cycle re-anchors the
  /// driver: the device clock slips against CLOCK_MONOTONIC by the lateness).
  [[nodiscard]] int xruns() const { return xruns_.load(); }
  /// Playback latency of the source port, frames (max of its range).
  [[nodiscard]] std::uint32_t playback_latency_frames() const { return latency_frames_; }

 private:
  [[nodiscard]] std::pair<std::int64_t, std::int64_t> dac_and_lateness_ns(std::size_t i) const;
  static int process(jack_nframes_t n, void* self);
  struct Cycle {
    std::size_t first = 0;  ///< index of the cycle's first recorded frame
    jack_time_t usecs = 0;  ///< JACK time of the cycle's start
  };
  jack_client_t* client_ = nullptr;
  jack_port_t* in_ = nullptr;
  int rate_ = 0;
  std::uint32_t latency_frames_ = 0;
  std::int64_t jack_minus_monotonic_ns_ = 0;  ///< jack_get_time() - CLOCK_MONOTONIC
  std::vector<float> samples_;
  std::vector<Cycle> cycles_;
  std::atomic<std::size_t> frames_{0}, ncycles_{0};
  std::atomic<bool> recording_{true};
  std::atomic<int> xruns_{0};
};

}  // namespace rtpnode::systest
