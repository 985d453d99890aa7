#include "node/source_table.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "node/net_address.hpp"

namespace rtpnode {

namespace {

/// Hash of a sender's IP address (port excluded): the per-host probation limit.
std::uint64_t host_key(const sockaddr* sa) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a
  const std::uint8_t* p = nullptr;
  std::size_t n = 0;
  if (sa->sa_family == AF_INET) {
    p = reinterpret_cast<const std::uint8_t*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
    n = 4;
  } else if (sa->sa_family == AF_INET6) {
    p = reinterpret_cast<const std::uint8_t*>(
        &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
    n = 16;
  }
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace

namespace {
void add_to(SourceTable::Totals& t, const SourceStats& st) {
  ++t.sources;
  t.packets_received += st.packets_received;
  t.packets_lost += static_cast<std::uint64_t>(std::max<std::int64_t>(0, st.packets_lost));
  t.packets_late += st.packets_late;
  t.packets_duplicate += st.packets_duplicate;
  t.underruns += st.underruns;
  t.underrun_frames += st.underrun_frames;
  if (st.audio_rate > 0)
    t.concealed_s += static_cast<double>(st.frames_concealed) / static_cast<double>(st.audio_rate);
}
}  // namespace

std::uint64_t collision_key(std::uint64_t key, const sockaddr* from) noexcept {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the whole address, port included
  const auto* p = reinterpret_cast<const std::uint8_t*>(from);
  const std::size_t n = sockaddr_length(from);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  const std::uint64_t tag = ((h ^ (h >> 15) ^ (h >> 30)) & 0x7fff) | 1;
  return (key & 0xffffffffffffull) | (tag << 48);
}

bool same_transport(const sockaddr* a, const sockaddr* b) noexcept {
  if (!same_host(a, b)) return false;
  if (a->sa_family == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(a)->sin_port ==
           reinterpret_cast<const sockaddr_in*>(b)->sin_port;
  return reinterpret_cast<const sockaddr_in6*>(a)->sin6_port ==
         reinterpret_cast<const sockaddr_in6*>(b)->sin6_port;
}

std::uint64_t raw_source_key(std::uint16_t port, const sockaddr* from) noexcept {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the whole address
  const auto* p = reinterpret_cast<const std::uint8_t*>(from);
  const std::size_t n = sockaddr_length(from);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return (1ull << 63) | (std::uint64_t{port} << 48) | (h & 0xffffffffffffull);
}

std::string address_text(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
  inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
  return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
}

SourceTable::SourceTable(Limits limits, Factory factory, EventWatcher& events, std::ostream& log)
    : limits_(limits), factory_(std::move(factory)), events_(events), log_(log) {}

Source* SourceTable::find(std::uint64_t key) const {
  const auto it = sources_.find(key);
  return it == sources_.end() ? nullptr : it->second.get();
}

bool SourceTable::full() const noexcept {
  return static_cast<int>(sources_.size() + retiring_.size()) >= limits_.max_sources;
}

void SourceTable::refuse(std::uint64_t key, mono_ns_t now, const std::string& why) {
  const std::size_t limit = 4 * static_cast<std::size_t>(limits_.max_sources) + 16;
  if (refused_.size() >= limit) {
    const std::int64_t timeout = limits_.source_timeout.count();
    std::erase_if(refused_, [&](const auto& kv) { return now - kv.second > timeout; });
  }
  const bool known = refused_.contains(key);         // raw streams ask again with every datagram
  if (refused_.size() < limit) refused_[key] = now;  // else: a flood of SSRCs, counted each time
  if (!known) ++counters_.sources_refused;
  if (!warned_refused_) {
    warned_refused_ = true;
    log_ << "rtpnode: warning: " << why << " (counted; further ones are not logged)\n";
  }
}

bool SourceTable::host_full(const sockaddr* from) const {
  // A sender on this host cannot be a remote flood (several local senders are a test setup).
  if (limits_.max_sources_per_host <= 0 || is_loopback(from)) return false;
  const auto it = source_hosts_.find(host_key(from));
  return it != source_hosts_.end() && it->second >= limits_.max_sources_per_host;
}

bool SourceTable::refused_at_limits(const NewSource& n) {
  if (full()) {
    refuse(n.key, n.first_arrival,
           "new stream refused: --max-sources " + std::to_string(limits_.max_sources) + " reached");
    return true;
  }
  if (host_full(n.from)) {
    if (!refused_.contains(n.key)) ++counters_.host_limit_refused;
    refuse(n.key, n.first_arrival,
           "new stream from " + address_text(n.from) + " refused: --max-sources-per-host " +
               std::to_string(limits_.max_sources_per_host) + " reached for its host");
    return true;
  }
  return false;
}

Source* SourceTable::create(const NewSource& n, mono_ns_t now) {
  if (Source* s = find(n.key)) return s;
  if (refused_at_limits(n)) return nullptr;
  std::unique_ptr<Source> s;
  try {
    s = factory_(n);
  } catch (const std::exception& e) {
    ++counters_.sources_refused;
    if (!warned_refused_) {
      warned_refused_ = true;
      log_ << "rtpnode: warning: cannot create source: " << e.what()
           << " (counted; further ones are not logged)\n";
    }
    return nullptr;
  }
  if (!s) return nullptr;
  refused_.erase(n.key);
  const Source::Params& p = s->params();
  log_ << "rtpnode: new source " << (n.raw ? std::string("raw") : "ssrc " + hex32(n.ssrc))
       << " from " << p.remote << " on port " << p.port << ": " << n.format->describe() << "\n";
  if (events_.enabled()) {
    nlohmann::json f = source_id(s->stats());
    f["payload_type"] = n.payload_type;
    events_.event("source_joined", f, now);
    // The same sender on the same port with a new SSRC: a restart (RFC 3550 §8.2 collision or a
    // new call leg).
    for (const Source* o : order_)
      if (!n.raw && o->params().port == p.port && o->params().remote == p.remote &&
          o->params().ssrc != n.ssrc)
        events_.event("ssrc_changed",
                      {{"port", p.port},
                       {"remote", p.remote},
                       {"old_ssrc", hex32(o->params().ssrc)},
                       {"new_ssrc", hex32(n.ssrc)}},
                      now);
  }
  Source* raw_ptr = s.get();
  const std::uint64_t host = host_key(n.from);
  ++source_hosts_[host];
  host_of_[raw_ptr] = host;
  events_.watch(*raw_ptr);
  order_.push_back(raw_ptr);
  sources_.emplace(n.key, std::move(s));
  update_timeline();  // before its first packet anchors it
  return raw_ptr;
}

bool SourceTable::evict_oldest_probation() {
  while (!probation_order_.empty()) {
    const auto [key, at] = probation_order_.front();
    probation_order_.pop_front();
    const auto it = probation_.find(key);
    if (it != probation_.end() && it->second.first_arrival == at) {
      erase_probation(it);
      return true;
    }
  }
  return false;
}

void SourceTable::note_probation_start(std::uint64_t key, mono_ns_t at) {
  probation_order_.emplace_back(key, at);
  if (probation_order_.size() <= 2 * probation_.size() + 64) return;
  std::erase_if(probation_order_, [this](const std::pair<std::uint64_t, mono_ns_t>& e) {
    const auto it = probation_.find(e.first);
    return it == probation_.end() || it->second.first_arrival != e.second;
  });
}

SourceTable::ProbationMap::iterator SourceTable::erase_probation(ProbationMap::iterator it) {
  const auto h =
      probation_hosts_.find(host_key(reinterpret_cast<const sockaddr*>(&it->second.from)));
  if (h != probation_hosts_.end() && --h->second == 0) probation_hosts_.erase(h);
  return probation_.erase(it);
}

Source* SourceTable::raw_source(std::uint64_t key, std::uint16_t port, const sockaddr* from,
                                const PayloadFormat& format, mono_ns_t now,
                                const ListenSpec* listen) {
  return create(NewSource{key, port, from, 0, 255, &format, true, now, listen}, now);
}

std::optional<SourceTable::Admitted> SourceTable::on_candidate(
    std::uint64_t key, std::uint16_t port, const RtpHeaderView& h,
    std::span<const std::uint8_t> data, const sockaddr* from, const PayloadFormat& format,
    mono_ns_t now, const ListenSpec* listen) {
  // A stream refused at --max-sources (--max-sources-per-host) stays refused while every slot
  // (its host's share) is taken; once one frees, it is admitted like a new one.
  if (auto r = refused_.find(key); r != refused_.end()) {
    if (full() || host_full(from)) {
      r->second = now;
      return std::nullopt;
    }
    refused_.erase(r);
  }
  // RFC 3550 A.1: a new SSRC is admitted after MIN_SEQUENTIAL = 2 packets in sequence; the
  // first is held and played too. Stray packets (a scan, a spoofed SSRC) never create a source.
  auto it = probation_.find(key);
  if (it == probation_.end()) {
    const std::size_t limit = 4 * static_cast<std::size_t>(limits_.max_sources) + 16;
    // One sending host holds at most an eighth of the table: a flood of new SSRCs from one host
    // cannot keep other hosts' new streams out.
    const std::size_t per_host = std::max<std::size_t>(8, limit / 8);
    const std::uint64_t host = host_key(from);
    auto held_by_host = [&] {
      const auto f = probation_hosts_.find(host);
      return f == probation_hosts_.end() ? std::size_t{0} : f->second;
    };
    if (probation_.size() >= limit || held_by_host() >= per_host) {
      // Forget candidates that never followed up.
      for (auto p = probation_.begin(); p != probation_.end();)
        p = now - p->second.first_arrival > kProbationForgetNs ? erase_probation(p) : std::next(p);
      if (held_by_host() >= per_host) {
        ++counters_.probation_dropped;
        return std::nullopt;
      }
      // Full with other hosts' candidates: the oldest one makes room. A stream's second
      // packet follows within its packet time, a flood's never does; so a flood from many
      // addresses must refill the whole table within a packet time (13 600 new addresses a
      // second at 20 ms and the default 64 sources: 272 entries) to keep a new stream out.
      if (probation_.size() >= limit) {
        if (!evict_oldest_probation()) {
          ++counters_.probation_dropped;
          return std::nullopt;
        }
        ++counters_.probation_evicted;
      }
    }
    Probation& added = probation_[key];
    added =
        Probation{std::vector<std::uint8_t>(data.begin(), data.end()), now, h.sequence_number, {}};
    std::memcpy(&added.from, from, sockaddr_length(from));
    ++probation_hosts_[host];
    note_probation_start(key, now);
    return std::nullopt;
  }
  Probation& pr = it->second;
  if (h.sequence_number != static_cast<std::uint16_t>(pr.last_seq + 1)) {
    if (!same_host(from, reinterpret_cast<const sockaddr*>(&pr.from)))
      return std::nullopt;                      // another host's packet: not a restart
    pr.first.assign(data.begin(), data.end());  // start over
    pr.first_arrival = now;
    pr.last_seq = h.sequence_number;
    std::memcpy(&pr.from, from, sockaddr_length(from));
    note_probation_start(key, now);
    return std::nullopt;
  }
  Admitted a;
  a.first = std::move(pr.first);
  a.first_arrival = pr.first_arrival;
  erase_probation(it);
  a.source = create(
      NewSource{key, port, from, h.ssrc, h.payload_type, &format, false, a.first_arrival, listen},
      now);
  if (a.source == nullptr) return std::nullopt;
  return a;
}

void SourceTable::on_bye(std::uint64_t key, const sockaddr* from) {
  if (auto pr = probation_.find(key);
      pr != probation_.end() &&
      same_host(from, reinterpret_cast<const sockaddr*>(&pr->second.from)))
    erase_probation(pr);
}

std::size_t SourceTable::expire(mono_ns_t now, frames_t now_frame) {
  for (auto it = retiring_.begin(); it != retiring_.end();) {
    if (!(*it)->drained()) {
      ++it;
      continue;
    }
    if ((*it)->bye())
      log_ << "rtpnode: source " << (*it)->params().remote << " drained after BYE\n";
    departed_.push_back((*it)->stats());  // final: its last audio has played
    add_to(departed_totals_, departed_.back());
    if (events_.enabled()) {
      nlohmann::json f = source_id(departed_.back());
      f["after"] = (*it)->bye() ? "bye" : "leave";
      f["frames_played"] = departed_.back().frames_played;
      events_.event("source_drained", f, now);
    }
    if (departed_.size() > kMaxDeparted) departed_.pop_front();
    if (const auto o = host_of_.find(it->get()); o != host_of_.end()) {
      const auto h = source_hosts_.find(o->second);
      if (h != source_hosts_.end() && --h->second <= 0) source_hosts_.erase(h);
      host_of_.erase(o);
    }
    it = retiring_.erase(it);
  }
  if (now - last_timeout_check_ < 100'000'000 &&
      std::none_of(order_.begin(), order_.end(), [](const Source* s) { return s->leaving(); }))
    return 0;  // every 100 ms is plenty for timeouts
  last_timeout_check_ = now;
  const std::int64_t timeout = limits_.source_timeout.count();
  std::size_t left = 0;
  for (auto it = sources_.begin(); it != sources_.end();) {
    Source* s = it->second.get();
    const bool timed_out = timeout > 0 && now - s->last_arrival() >= timeout && !s->leaving();
    if (!timed_out && !s->leaving()) {
      ++it;
      continue;
    }
    if (events_.enabled()) {
      nlohmann::json f = source_id(s->stats());
      f["reason"] = timed_out ? "timeout" : "bye";
      f["queued_ms"] = s->queued_ms();
      events_.event("source_left", f, now);
    }
    events_.forget(s);
    if (timed_out) {
      log_ << "rtpnode: source " << s->stats().payload << " from " << s->params().remote
           << " timed out after " << std::chrono::duration<double>(limits_.source_timeout).count()
           << " s without packets\n";
      s->leave(now_frame);
    } else {
      log_ << "rtpnode: source " << s->stats().payload << " from " << s->params().remote
           << " said BYE; its queued audio plays out\n";
    }
    order_.erase(std::find(order_.begin(), order_.end(), s));
    retiring_.push_back(std::move(it->second));
    it = sources_.erase(it);
    ++left;
  }
  if (left > 0) update_timeline();
  return left;
}

void SourceTable::on_device_jump(frames_t behind, const DeviceClock& clock, mono_ns_t now) {
  if (behind == 0) return;
  if (timeline_.on()) timeline_.on_device_jump(behind);
  for (Source* s : order_) s->on_device_jump(behind, clock, now);
}

void SourceTable::update_timeline() {
  if (!limits_.sync_rtcp) return;
  std::size_t with_sr = 0;
  for (const Source* s : order_) with_sr += s->has_sender_report() ? 1 : 0;
  if (limits_.sync_absolute) {
    timeline_.set_absolute(true);
    if (with_sr == 0) timeline_.turn_off();  // on again at follow_wall_clock
    return;
  }
  if (with_sr < 2) {
    timeline_.turn_off();
    return;
  }
  if (timeline_.on()) return;
  for (const Source* s : order_)
    if (s->define_timeline(timeline_)) {
      log_ << "rtpnode: NTP timeline on (" << with_sr << " sources with RTCP SR), defined by "
           << s->params().remote << "\n";
      return;
    }
}

double SourceTable::follow_wall_clock(const DeviceClock& clock, mono_ns_t now,
                                      std::int64_t ntp_minus_monotonic_ns) {
  if (!limits_.sync_rtcp || !limits_.sync_absolute || !clock.valid()) return 0;
  timeline_.set_absolute(true);
  const bool any_sr = std::any_of(order_.begin(), order_.end(),
                                  [](const Source* s) { return s->has_sender_report(); });
  if (!any_sr) {
    timeline_.turn_off();
    return 0;
  }
  const bool was_on = timeline_.on();
  const double dac_frame =
      clock.position_at(now) - static_cast<double>(clock.output_latency_frames());
  const double frames_per_ns = clock.rate() * (1.0 + clock.skew()) * 1e-9;
  const double move = timeline_.set_wall_clock(now + ntp_minus_monotonic_ns, dac_frame,
                                               limits_.playout_delay.count(), frames_per_ns,
                                               clock.rate() / 1000.0);  // a step: 1 ms
  if (!was_on)
    log_ << "rtpnode: absolute timeline on: captured at NTP time T plays at wall-clock T + "
         << static_cast<double>(limits_.playout_delay.count()) / 1e6 << " ms\n";
  return move;
}

SourceTable::Totals SourceTable::totals() const {
  Totals t = departed_totals_;
  for (const auto& [key, s] : sources_) add_to(t, s->stats());
  for (const auto& s : retiring_) add_to(t, s->stats());
  auto hold = [](std::uint64_t& now, std::uint64_t& high) { now = high = std::max(now, high); };
  hold(t.sources, high_water_.sources);
  hold(t.packets_received, high_water_.packets_received);
  hold(t.packets_lost, high_water_.packets_lost);
  hold(t.packets_late, high_water_.packets_late);
  hold(t.packets_duplicate, high_water_.packets_duplicate);
  hold(t.underruns, high_water_.underruns);
  hold(t.underrun_frames, high_water_.underrun_frames);
  t.concealed_s = high_water_.concealed_s = std::max(t.concealed_s, high_water_.concealed_s);
  return t;
}

std::vector<SourceReport> SourceTable::reports(bool with_departed) const {
  std::vector<SourceReport> out;
  for (const Source* s : order_) out.push_back({s->stats(), "active"});
  for (const auto& s : retiring_) out.push_back({s->stats(), "leaving"});
  if (with_departed)
    for (const SourceStats& st : departed_) out.push_back({st, "departed"});
  return out;
}

}  // namespace rtpnode
