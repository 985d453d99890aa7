// rtpsend's command line: the flags (CLI11) as given, and the checked plan made of them.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "node/config.hpp"
#include "rtp/codec.hpp"
#include "tools/fault_injector.hpp"

namespace rtpnode::rtpsend {

/// The flags as given (text where they need parsing).
struct Options {
  /// Set by add_options: the --ssrc option (whether it was given).
  CLI::Option* ssrc_option = nullptr;
  std::vector<std::string> files;
  std::vector<std::string> dests;
  std::string codec = "l16", ptime = "20ms", sdp, stats_json, duration, raw_format, trace_out,
              start_at;
  std::string tone, clicks, iface;
  bool silence = false, loop = false, raw = false, fec = false, dtx = false;
  int pt = -1, bitrate = 0, channels = 0, complexity = 10, ttl = 1;
  int red_pt = -1;  ///< --red: RFC 2198 payload type (-1: no redundancy)
  std::string rtcp_interval = "5s";
  std::string live_epoch;
  bool no_bye = false;
  bool no_rtcp = false;          ///< --no-rtcp: no Sender Report, no BYE
  bool amr_octet_align = false;  ///< --amr-octet-align (RFC 4867 §4.4.1)
  std::string ts_refclk;         ///< --ts-refclk ntp|ptp: RFC 7273 direct media clock ("" = none)
  std::string expected_loss;
  std::uint32_t ssrc = 0;
  bool ssrc_set = false;
  std::string ssrc_change_at, seq_jump_at, ts_jump_at, pause;
  std::uint64_t seed = 1;
  std::string loss_s, burst_s, jitter_s, reorder_s, duplicate_s;
  double skew_ppm = 0;
};

/// Binds every flag of rtpsend to `o` (README "rtpsend").
void add_options(CLI::App& app, Options& o);

/// What the flags mean once checked.
struct Plan {
  int signals = 0;                ///< 1 when a test signal replaces the files
  std::size_t streams = 0;        ///< streams to send
  std::vector<ListenSpec> dests;  ///< one for all streams, or one per stream
  std::chrono::nanoseconds ptime{0};
  std::optional<std::chrono::nanoseconds> duration;  ///< unset: until the input ends
  /// Scripted events, ns after the start; -1: none.
  std::int64_t ssrc_change_at = -1, seq_jump_at = -1, ts_jump_at = -1, pause_at = -1;
  std::int64_t pause_dur = 0;
  FaultConfig faults;
  EncoderOptions encoder;
  std::chrono::nanoseconds sr_interval{5'000'000'000};
};

/// Checks the flags together. Returns std::nullopt with `error` set to one line naming the flag.
std::optional<Plan> make_plan(const Options& o, std::string& error);

}  // namespace rtpnode::rtpsend
