#include "tools/rtpsend/report.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

namespace rtpnode::rtpsend {

namespace {

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

void report(const Options& o, const Plan& p, const std::vector<std::unique_ptr<Stream>>& streams) {
  nlohmann::json js = nlohmann::json::array();
  std::uint64_t packets = 0, datagrams = 0, bytes = 0;
  FaultCounters total;
  std::vector<double> all_late;
  for (const auto& sp : streams) {
    const Stream& s = *sp;
    const FaultCounters& fc = s.injector->counters();
    packets += s.packets;
    datagrams += s.datagrams;
    bytes += s.bytes;
    total.lost += fc.lost;
    total.duplicated += fc.duplicated;
    total.reordered += fc.reordered;
    total.delayed += fc.delayed;
    all_late.insert(all_late.end(), s.late_us.begin(), s.late_us.end());
    js.push_back({{"name", s.name},
                  {"dest", s.dest.describe()},
                  {"ssrc", s.ssrc},
                  {"payload_type", s.pt},
                  {"payload", s.fmt.describe()},
                  {"packets", s.packets},
                  {"datagrams", s.datagrams},
                  {"payload_bytes", s.bytes},
                  {"dtx_suppressed", s.dtx_suppressed},
                  {"paused", s.paused},
                  {"ssrc_changes", s.ssrc_changes},
                  {"faults",
                   {{"lost", fc.lost},
                    {"duplicated", fc.duplicated},
                    {"reordered", fc.reordered},
                    {"delayed", fc.delayed}}}});
  }
  const double p50 = percentile(all_late, 0.5), p99 = percentile(all_late, 0.99);
  const double mx = all_late.empty() ? 0 : *std::max_element(all_late.begin(), all_late.end());
  std::fprintf(stderr,
               "rtpsend: sent %" PRIu64 " packets (%" PRIu64 " datagrams), %" PRIu64
               " payload bytes; send-time error p50 %.0f us, p99 %.0f us, max %.0f us\n",
               packets, datagrams, bytes, p50, p99, mx);
  if (p.faults.any())
    std::fprintf(stderr,
                 "rtpsend: injected (seed %" PRIu64 "): lost %" PRIu64 ", duplicated %" PRIu64
                 ", reordered %" PRIu64 ", delayed %" PRIu64 "\n",
                 o.seed, total.lost, total.duplicated, total.reordered, total.delayed);
  if (!o.stats_json.empty()) {
    nlohmann::json j{{"packets", packets},
                     {"datagrams", datagrams},
                     {"payload_bytes", bytes},
                     {"ssrc", streams.front()->ssrc},
                     {"payload_type", streams.front()->pt},
                     {"seed", o.seed},
                     {"skew_ppm", o.skew_ppm},
                     {"faults",
                      {{"lost", total.lost},
                       {"duplicated", total.duplicated},
                       {"reordered", total.reordered},
                       {"delayed", total.delayed}}},
                     {"send_error_us", {{"p50", p50}, {"p99", p99}, {"max", mx}}},
                     {"streams", js}};
    std::ofstream(o.stats_json) << j.dump(2) << "\n";
  }
}

}  // namespace rtpnode::rtpsend
