#include "node/control_api.hpp"

#include <cmath>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace rtpnode {

namespace {

HttpResponse control(const HttpRequest& req, const ControlContext& ctx, const std::string& selector,
                     const std::string& action) {
  auto bad = [](int status, const std::string& msg) {
    return HttpResponse{status, "text/plain; charset=utf-8", msg + "\n"};
  };
  std::string err;
  const auto sel = parse_selector(selector, err);
  if (!sel) return bad(400, err);
  const auto value_it = req.query.find("value");
  const std::string value = value_it == req.query.end() ? std::string() : value_it->second;
  const bool needs_value = action == "gain" || action == "offset" || action == "route";
  if (action != "flush" && action != "mute" && action != "unmute" && !needs_value)
    return bad(404, "unknown action '" + action + "' (flush, mute, unmute, gain, offset, route)");
  if (needs_value && value.empty()) return bad(400, action + " needs ?value=");
  std::optional<SourceRule> rule;
  std::optional<std::vector<int>> route;
  if (action == "gain") rule = parse_gain_rule(selector + "=" + value, err);
  if (action == "offset") rule = parse_offset_rule(selector + "=" + value, err);
  if (action == "route") {
    if (value == "standard")
      rule = SourceRule{};
    else if ((rule = parse_route_rule(selector + "=" + value, ctx.device_channels, err)))
      route = rule->route;
  }
  if (needs_value && !rule) return bad(400, err);
  const mono_ns_t now = ctx.now;
  const DeviceClock& clock_ = ctx.clock;
  nlohmann::json applied = nlohmann::json::array();
  bool busy = false;
  for (Source* s : ctx.sources) {
    if (!sel->matches(s->params().port, s->params().ssrc, !s->params().raw)) continue;
    if (action == "flush")
      s->flush(clock_, now);
    else if (action == "mute")
      s->set_muted(true, clock_, now);
    else if (action == "unmute")
      s->set_muted(false, clock_, now);
    else if (action == "gain")
      s->set_gain_db(rule->gain_db, clock_, now);
    else if (action == "offset")
      s->set_offset(ns_to_frames(rule->offset.count(),
                                 static_cast<std::int64_t>(std::llround(clock_.rate()))));
    else if (action == "route" && !s->set_route(route, clock_, now)) {
      busy = true;
      continue;
    }
    applied.push_back(source_json({s->stats(), "active"}));
  }
  if (applied.empty() && !busy) return bad(404, "no source matches " + selector);
  if (busy && applied.empty())
    return bad(409, "a route change of " + selector + " is still under way; retry");
  if (ctx.events.enabled()) {
    nlohmann::json ssrcs = nlohmann::json::array();
    for (const auto& a : applied) ssrcs.push_back(a["ssrc_hex"]);
    ctx.events.event("control",
                     {{"action", action},
                      {"selector", selector},
                      {"value", value},
                      {"sources", ssrcs},
                      {"client", req.peer}},
                     now);
  }
  return {200, "application/json",
          nlohmann::json{{"action", action}, {"sources", applied}}.dump(2) + "\n"};
}

}  // namespace

HttpResponse handle_http(const HttpRequest& req, const ControlContext& ctx) {
  const std::string json_type = "application/json";
  if (req.path == "/metrics" || req.path == "/stats" || req.path == "/sources" || req.path == "/") {
    if (req.method != "GET" && req.method != "HEAD")
      return {405, "text/plain; charset=utf-8", "use GET\n"};
    if (req.path == "/metrics")
      return {200, "text/plain; version=0.0.4; charset=utf-8",
              prometheus_text(ctx.snapshot(), ctx.reports(false))};
    if (req.path == "/stats")
      return {200, json_type, stats_json(ctx.snapshot(), ctx.reports(true)).dump(2) + "\n"};
    if (req.path == "/sources") {
      nlohmann::json list = nlohmann::json::array();
      for (const SourceReport& r : ctx.reports(false)) list.push_back(source_json(r));
      return {200, json_type, list.dump(2) + "\n"};
    }
    return {200, "text/plain; charset=utf-8",
            "rtpnode\n"
            "GET  /metrics                      Prometheus text format\n"
            "GET  /stats                        JSON (docs/stats.schema.json)\n"
            "GET  /sources                      sources playing, with queued_ms\n"
            "POST /sources/SEL/flush|mute|unmute\n"
            "POST /sources/SEL/gain?value=-6dB | offset?value=+12.5ms | "
            "route?value=L|R|LR|1,2|standard\n"
            "     SEL: port:N or ssrc:0xHEX\n"};
  }
  constexpr std::string_view prefix = "/sources/";
  if (req.path.rfind(prefix, 0) == 0) {
    const std::string rest = req.path.substr(prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string::npos || rest.find('/', slash + 1) != std::string::npos)
      return {404, "text/plain; charset=utf-8", "expected /sources/SEL/ACTION\n"};
    if (req.method != "POST")
      return {405, "text/plain; charset=utf-8", "control actions need POST\n"};
    return control(req, ctx, rest.substr(0, slash), rest.substr(slash + 1));
  }
  return {404, "text/plain; charset=utf-8", "not found; GET / lists the endpoints\n"};
}

}  // namespace rtpnode
