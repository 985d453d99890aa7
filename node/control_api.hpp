// The HTTP control API (README "HTTP endpoint"): GET /metrics (Prometheus), /stats (JSON),
// /sources, and POST /sources/SEL/ACTION (flush, mute, unmute, gain, offset, route) on the sources
// a selector matches. The HTTP server (http_server.hpp) parses requests and checks who may ask;
// this part answers them. Thread: loop only.
#pragma once

#include <functional>
#include <vector>

#include "node/device_clock.hpp"
#include "node/event_watcher.hpp"
#include "node/http_server.hpp"
#include "node/source.hpp"
#include "node/stats_model.hpp"

namespace rtpnode {

/// What a request reads and acts on, lent by the node for one request.
struct ControlContext {
  std::function<NodeSnapshot()> snapshot;                                ///< the node's figures now
  std::function<std::vector<SourceReport>(bool with_departed)> reports;  ///< every source's
  const std::vector<Source*>& sources;  ///< sources playing (controls apply)
  const DeviceClock& clock;             ///< control changes apply now
  int device_channels = 2;              ///< for route values
  EventWatcher& events;                 ///< "control" events
  mono_ns_t now = 0;
};

/// Answers one request: 200 with the body, 400 for a bad selector or value, 404 for an unknown
/// path, action or a selector matching nothing, 405 for a wrong method, 409 while a route change
/// of the source is still under way.
HttpResponse handle_http(const HttpRequest& req, const ControlContext& ctx);

}  // namespace rtpnode
