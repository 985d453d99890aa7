// rtpsend: the test sender. Streams audio files or test signals as RTP (or headerless PCM) with
// exact pacing (tools/rtpsend/sender.hpp), RTCP Sender Reports with the exact NTP time of each
// timestamp (RFC 3550 §6.4.1) to port + 1 and a BYE at the end, and seeded, reproducible
// network faults (tools/fault_injector.hpp). Parts: options (flags and their checks),
// audio_input (files and signals), stream (transport, SDP), sender (the pacing loop), report.
#include <CLI/CLI.hpp>
#include <ortp/ortp.h>

#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <random>

#include "rtp/ortp_log.hpp"
#include "tools/rtpsend/options.hpp"
#include "tools/rtpsend/report.hpp"
#include "tools/rtpsend/sender.hpp"
#include "tools/rtpsend/stream.hpp"

using namespace rtpnode;
using namespace rtpnode::rtpsend;

int main(int argc, char** argv) {
  CLI::App app{
      "rtpsend: stream audio files or test signals as RTP with exact pacing and seeded network "
      "faults"};
  Options o;
  add_options(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; any usage error: 2
  }
  o.ssrc_set = o.ssrc_option->count() > 0;
  auto fail = [](const std::string& m) {
    std::cerr << "rtpsend: " << m << "\n";
    return 2;
  };
  std::string err;
  const auto plan = make_plan(o, err);
  if (!plan) return fail(err);
  try {
    std::random_device rd;
    auto streams = make_streams(o, *plan, rd);
    if (!o.raw) {
      ortp_init();
      ortp_log_route();  // what oRTP prints goes through one filter: repeats are counted
      ortp_set_log_level_mask(nullptr, ORTP_ERROR | ORTP_FATAL);
    }
    const double ptime_ms = std::chrono::duration<double, std::milli>(plan->ptime).count();
    for (auto& s : streams) open_transport(*s, o.ttl, o.iface, o.raw, !o.no_rtcp);
    if (!o.sdp.empty() && !o.raw) write_sdp(o.sdp, streams, ptime_ms, o.ts_refclk);
    std::signal(SIGINT, [](int) { request_stop(); });
    std::signal(SIGTERM, [](int) { request_stop(); });
    for (const auto& s : streams) {
      char ssrc_hex[16];
      std::snprintf(ssrc_hex, sizeof ssrc_hex, "0x%08" PRIx32, s->ssrc);
      std::cerr << "rtpsend: " << s->name << " -> " << s->dest.describe() << " as "
                << (o.raw
                        ? "raw s16le/" + std::to_string(s->fmt.audio_rate) + "/" +
                              std::to_string(s->fmt.channels)
                        : s->fmt.describe() + " pt " + std::to_string(s->pt) + " ssrc " + ssrc_hex)
                << ", " << ptime_ms << " ms packets\n";
    }
    Sender sender(o, *plan, streams, rd);
    sender.run();
    report(o, *plan, streams);
    streams.clear();  // BYE and close before ortp_exit
    if (!o.raw) ortp_exit();
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return 0;
}
