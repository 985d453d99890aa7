#include "node/capture_replay.hpp"

#include "node/loop_clock.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace rtpnode {
namespace {

std::uint16_t port_of(const sockaddr_storage& ss) {
  return ntohs(ss.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(ss).sin_port
                                       : reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
}

/// True when the --listen address `spec` takes datagrams sent to `dst` (a wildcard takes all).
bool address_matches(const std::string& spec, const sockaddr_storage& dst) {
  in6_addr a6{};
  in_addr a4{};
  if (inet_pton(AF_INET, spec.c_str(), &a4) == 1) {
    if (a4.s_addr == INADDR_ANY) return true;
    return dst.ss_family == AF_INET &&
           reinterpret_cast<const sockaddr_in&>(dst).sin_addr.s_addr == a4.s_addr;
  }
  if (inet_pton(AF_INET6, spec.c_str(), &a6) == 1) {
    if (IN6_IS_ADDR_UNSPECIFIED(&a6)) return true;
    return dst.ss_family == AF_INET6 &&
           std::memcmp(&reinterpret_cast<const sockaddr_in6&>(dst).sin6_addr, &a6, 16) == 0;
  }
  return false;
}

}  // namespace

CaptureReplay::CaptureReplay(uv_loop_t* loop, std::unique_ptr<CaptureFileReader> reader,
                             std::unique_ptr<LiveCapture> live, std::vector<ListenSpec>& listens,
                             bool discover, int channels, EndpointAdded added)
    : reader_(std::move(reader)),
      live_(std::move(live)),
      listens_(listens),
      discovery_(discover ? std::make_unique<CallDiscovery>(true) : nullptr),
      channels_(channels),
      added_(std::move(added)) {
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  if (live_) {
    uv_poll_init(loop, &poll_, live_->fd());
    poll_.data = this;
  }
}

CaptureReplay::CaptureReplay(uv_loop_t* loop, const std::string& path,
                             std::vector<ListenSpec>& listens, bool discover, int channels,
                             EndpointAdded added)
    : CaptureReplay(loop, std::make_unique<CaptureFileReader>(path), nullptr, listens, discover,
                    channels, std::move(added)) {}

CaptureReplay::CaptureReplay(uv_loop_t* loop, const LiveSource& live,
                             std::vector<ListenSpec>& listens, bool discover, int channels,
                             EndpointAdded added)
    : CaptureReplay(loop, nullptr, std::make_unique<LiveCapture>(live.iface, live.filter), listens,
                    discover, channels, std::move(added)) {}

std::optional<std::pair<std::size_t, bool>> CaptureReplay::route(
    const std::vector<ListenSpec>& listens, const CapturedDatagram& d) {
  const std::uint16_t port = port_of(d.destination);
  for (std::size_t i = 0; i < listens.size(); ++i) {
    const ListenSpec& l = listens[i];
    if (!address_matches(l.address, d.destination)) continue;
    if (l.port == port) return std::pair{i, false};
    if (!l.raw && l.port != 65535 && l.port + 1 == port) return std::pair{i, true};
  }
  return std::nullopt;
}

std::size_t CaptureReplay::RouteKeyHash::operator()(const RouteKey& k) const noexcept {
  // The key's words mixed by multiply-xorshift (splitmix64's finaliser): a few instructions, and
  // addresses that differ in one byte spread over the table.
  std::uint64_t a = 0, b = 0;
  std::memcpy(&a, k.address.data(), 8);
  std::memcpy(&b, k.address.data() + 8, 8);
  std::uint64_t h = a ^ (b * 0x9e3779b97f4a7c15ull) ^
                    (static_cast<std::uint64_t>(k.port) << 8 | k.family) * 0xbf58476d1ce4e5b9ull;
  h ^= h >> 31;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 29;
  return static_cast<std::size_t>(h);
}

std::optional<std::pair<std::size_t, bool>> CaptureReplay::route_indexed(
    const CapturedDatagram& d) {
  for (; routes_indexed_ < listens_.size(); ++routes_indexed_) {
    const ListenSpec& l = listens_[routes_indexed_];
    RouteKey key;
    in_addr a4{};
    in6_addr a6{};
    if (inet_pton(AF_INET, l.address.c_str(), &a4) == 1) {
      if (a4.s_addr != INADDR_ANY) {
        key.family = AF_INET;
        std::memcpy(key.address.data(), &a4, 4);
      }
    } else if (inet_pton(AF_INET6, l.address.c_str(), &a6) == 1) {
      if (!IN6_IS_ADDR_UNSPECIFIED(&a6)) {
        key.family = AF_INET6;
        std::memcpy(key.address.data(), &a6, 16);
      }
    } else {
      continue;  // matches nothing (route() agrees)
    }
    key.port = l.port;
    route_index_.emplace(key, std::pair{routes_indexed_, false});  // an earlier listen wins
    if (!l.raw && l.port != 65535) {
      key.port = static_cast<std::uint16_t>(l.port + 1);
      route_index_.emplace(key, std::pair{routes_indexed_, true});
    }
  }
  RouteKey exact;
  exact.port = port_of(d.destination);
  if (d.destination.ss_family == AF_INET) {
    exact.family = AF_INET;
    std::memcpy(exact.address.data(), &reinterpret_cast<const sockaddr_in&>(d.destination).sin_addr,
                4);
  } else if (d.destination.ss_family == AF_INET6) {
    exact.family = AF_INET6;
    std::memcpy(exact.address.data(),
                &reinterpret_cast<const sockaddr_in6&>(d.destination).sin6_addr, 16);
  }
  RouteKey wildcard;
  wildcard.port = exact.port;
  std::optional<std::pair<std::size_t, bool>> found;
  if (auto it = route_index_.find(exact); it != route_index_.end()) found = it->second;
  if (auto it = route_index_.find(wildcard); it != route_index_.end())
    if (!found || it->second.first < found->first) found = it->second;
  // The map keeps, per key, the first claim in route()'s order (listen by listen, its RTP port
  // before its RTCP port); between an exact and a wildcard claim the lower listen wins.
  return found;
}

void CaptureReplay::start(DatagramSink sink, std::function<void()> on_end) {
  if (started_) return;
  started_ = true;
  sink_ = std::move(sink);
  on_end_ = std::move(on_end);
  start_ns_ = node_now_ns();
  if (live_) {
    uv_poll_start(&poll_, UV_READABLE, [](uv_poll_t* p, int, int) {
      static_cast<CaptureReplay*>(p->data)->on_readable();
    });
    return;
  }
  pump();
}

bool CaptureReplay::read_next() {
  auto d = reader_->next();
  if (!d) return false;
  pending_ = *d;
  pending_bytes_.assign(d->payload.begin(), d->payload.end());
  pending_.payload = pending_bytes_;
  if (!have_t0_) {
    have_t0_ = true;
    t0_ = last_t_ = pending_.time_ns;
  }
  if (pending_.time_ns < last_t_) {
    ++stats_.time_steps_back;
    pending_.time_ns = last_t_;  // no going back in time
  }
  last_t_ = pending_.time_ns;
  return true;
}

void CaptureReplay::pump() {
  const mono_ns_t now = node_now_ns();
  for (;;) {
    if (!have_pending_) {
      have_pending_ = read_next();
      if (!have_pending_) {
        stats_.ended = true;
        uv_timer_stop(&timer_);
        if (on_end_) {
          auto done = std::move(on_end_);
          on_end_ = nullptr;
          done();
        }
        return;
      }
    }
    const mono_ns_t due = start_ns_ + static_cast<mono_ns_t>(pending_.time_ns - t0_);
    if (due > now) {
      if (driven_) return;  // the offline render calls advance() at next_due()
      // Wake at the millisecond the next datagram is due (libuv timers have 1 ms resolution;
      // the arrival time handed on is `due` itself, not the wake-up).
      const auto wait_ms = static_cast<std::uint64_t>((due - now + 999'999) / 1'000'000);
      uv_timer_start(
          &timer_, [](uv_timer_t* t) { static_cast<CaptureReplay*>(t->data)->pump(); }, wait_ms, 0);
      return;
    }
    have_pending_ = false;
    handle(pending_, due);
  }
}

std::optional<mono_ns_t> CaptureReplay::next_due() const noexcept {
  if (!started_ || live_ || stats_.ended || !have_pending_) return std::nullopt;
  return start_ns_ + static_cast<mono_ns_t>(pending_.time_ns - t0_);
}

void CaptureReplay::advance() {
  if (started_ && !live_ && !stats_.ended) pump();
}

mono_ns_t CaptureReplay::arrival_of(std::int64_t capture_ns) const noexcept {
  if (live_) return static_cast<mono_ns_t>(capture_ns + live_offset_ns_);
  return start_ns_ + static_cast<mono_ns_t>(std::max(capture_ns, t0_) - t0_);
}

std::int64_t CaptureReplay::capture_time_ns(mono_ns_t arrival) const noexcept {
  if (live_) return static_cast<std::int64_t>(arrival) - live_offset_ns_;
  return t0_ + static_cast<std::int64_t>(arrival - start_ns_);
}

void CaptureReplay::handle(const CapturedDatagram& d, mono_ns_t arrival) {
  if (d.tcp) {  // a SIP message from a TCP stream: for discovery only, never media
    if (discovery_) {
      auto found = discovery_->on_datagram(d, true);
      for (const MediaEndpoint& e : found.new_endpoints) add_endpoint(e);
      if (found.sip) ++stats_.sip;
    }
    return;
  }
  if (discovery_) {
    auto found = discovery_->on_datagram(d, route_indexed(d).has_value());
    for (const MediaEndpoint& e : found.new_endpoints) add_endpoint(e);
    if (found.sip) {
      ++stats_.sip;
      return;
    }
    if (found.candidate) {
      ++stats_.heuristic_held;
      return;
    }
    for (const auto& [t, bytes] : found.held) {
      CapturedDatagram held = d;
      held.time_ns = t;
      held.payload = bytes;
      deliver(held, arrival_of(t));
    }
  }
  deliver(d, arrival);
}

void CaptureReplay::on_readable() {
  // Kernel capture times are on CLOCK_REALTIME; the node's clock is monotonic: their offset,
  // read now, maps one onto the other (a wall-clock step moves it, which is what it should do).
  timespec rt{};
  clock_gettime(CLOCK_REALTIME, &rt);
  const auto mono = static_cast<std::int64_t>(uv_hrtime());
  live_offset_ns_ = mono - (static_cast<std::int64_t>(rt.tv_sec) * 1'000'000'000 + rt.tv_nsec);
  // At most a few hundred datagrams per wake-up: the loop's other work goes on under a flood.
  for (int i = 0; i < 512; ++i) {
    auto d = live_->next();
    if (!d) break;
    if (!have_t0_) {
      have_t0_ = true;
      t0_ = d->time_ns;
    }
    last_t_ = d->time_ns;
    handle(*d, arrival_of(d->time_ns));
  }
}

void CaptureReplay::deliver(const CapturedDatagram& d, mono_ns_t arrival) {
  const auto where = route_indexed(d);
  if (!where) {
    ++stats_.not_listened;
    return;
  }
  ++stats_.delivered;
  sink_(ReceivedDatagram{d.payload, reinterpret_cast<const sockaddr*>(&d.source), where->first,
                         where->second, arrival});
}

void CaptureReplay::add_endpoint(const MediaEndpoint& e) {
  ListenSpec l;
  char host[INET6_ADDRSTRLEN] = {};
  if (e.address.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(e.address);
    inet_ntop(AF_INET, &sin.sin_addr, host, sizeof host);
    l.port = ntohs(sin.sin_port);
  } else {
    const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(e.address);
    inet_ntop(AF_INET6, &sin6.sin6_addr, host, sizeof host);
    l.port = ntohs(sin6.sin6_port);
  }
  l.address = host;
  l.payloads = e.payloads;
  if (channels_ >= 2) l.route = std::vector<int>{e.side};
  // A re-INVITE repeating an endpoint: the listen it has already (same address and port) stays.
  for (const ListenSpec& have : listens_)
    if (have.address == l.address && have.port == l.port) return;
  listens_.push_back(std::move(l));
  if (added_) added_(e, listens_.size() - 1);
}

}  // namespace rtpnode
