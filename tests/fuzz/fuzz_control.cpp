// libFuzzer target: the HTTP control API itself (handle_http, node/control_api.hpp), without the
// TCP connection fuzz_http needs per input, so it runs at parser speed. Each input is one
// request: byte 0 picks the method, the rest up to the first '?' is the path, and the rest is
// the query, '&'-separated key=value pairs, the way the server hands them over. It acts on two
// playing PCMU sources (one synchronised timeline, a real Mixer) that render and mix a block
// after each request, so every accepted control (flush, mute, gain, offset, route) takes effect.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "node/control_api.hpp"
#include "node/mixer.hpp"
#include "node/sync_timeline.hpp"
#include "rtp/rtp_header.hpp"
#include "support/packet_builder.hpp"
#include "support/source_params.hpp"

using namespace rtpnode;

namespace {

constexpr mono_ns_t kT0 = 1'000'000'000'000;

struct Node {
  Mixer mixer{2, (Source::kMaxStreams + 1) * 2, 240};
  SyncTimeline timeline;
  DeviceClock clock{48000};
  EventWatcher events{""};
  std::vector<std::unique_ptr<Source>> owned;
  std::vector<Source*> sources;
  test::PacketBuilder builders[2];
  std::vector<float> block = std::vector<float>(2 * 240);
  mono_ns_t now = kT0;
  int packet = 0;

  Node() {
    clock.update(DevicePosition{0, 256, 0.0, 0.0107, 1}, 0.0, kT0);
    for (std::uint32_t i = 0; i < 2; ++i) {
      builders[i].ssrc = 0xa0 + i;
      owned.push_back(std::make_unique<Source>(
          test::source_params(i + 1, 0xa0 + i, {Codec::pcmu, 8000, 8000, 1}, 0, &mixer, &timeline),
          kT0, clock));
      sources.push_back(owned.back().get());
    }
  }
  /// 5 ms: a packet every 20 ms to each source, a render, a mixed block.
  void step() {
    if (now % 20'000'000 == 0) {
      const std::vector<std::uint8_t> payload(160, 0x55);
      for (std::size_t i = 0; i < 2; ++i) {
        const auto pkt = builders[i].build(static_cast<seq_t>(packet),
                                           static_cast<rtp_ts_t>(packet * 160), payload);
        RtpHeaderView h;
        if (rtp_parse(pkt, h) == RtpParseStatus::ok) sources[i]->on_rtp(h, now, clock);
      }
      ++packet;
    }
    for (Source* s : sources) s->render(clock, now);
    mixer.flush_deferred();
    mixer.process(block.data(), 240, {});
    while (mixer.take_retired() != nullptr) {
    }
    now += 5'000'000;
  }
};

Node& node() {
  static Node n;  // one for the whole run: its sources keep playing between requests
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const char* const kMethods[] = {"GET", "POST", "PUT", "DELETE"};
  HttpRequest req;
  req.method = kMethods[data[0] % 4];
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t q = rest.find('?');
  req.path = std::string(rest.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view query = rest.substr(q + 1);
    while (!query.empty()) {
      const std::size_t amp = query.find('&');
      const std::string_view pair = query.substr(0, amp);
      const std::size_t eq = pair.find('=');
      req.query[std::string(pair.substr(0, eq))] =
          eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  req.peer = "127.0.0.1:40000";
  Node& n = node();
  const ControlContext ctx{[] { return NodeSnapshot{}; },
                           [&n](bool) {
                             std::vector<SourceReport> r;
                             for (const Source* s : n.sources) r.push_back({s->stats(), "active"});
                             return r;
                           },
                           n.sources,
                           n.clock,
                           2,
                           n.events,
                           n.now};
  (void)handle_http(req, ctx);
  n.step();
  return 0;
}
