#include "node/sap_directory.hpp"

#include <fnmatch.h>

#include <algorithm>

#include "rtp/sdp.hpp"

namespace rtpnode {

mono_ns_t SapSession::timeout_ns() const noexcept {
  const mono_ns_t interval =
      interval_ns > 0 ? std::clamp(interval_ns, kMinInterval, kDefaultInterval) : kDefaultInterval;
  return 10 * interval;
}

void SapDirectory::heard_again(SapSession& s, mono_ns_t now) noexcept {
  s.interval_ns = now - s.last_heard;
  s.last_heard = now;
  ++s.announcements;
}

SapDirectory::SapDirectory(std::string name_glob, std::size_t max_sessions)
    : glob_(std::move(name_glob)), max_(std::max<std::size_t>(1, max_sessions)) {}

SapDirectory::Change SapDirectory::on_message(const SapMessage& m, mono_ns_t now) {
  Change c;
  const std::string key = m.origin + "#" + std::to_string(m.msg_id_hash);
  const auto it = sessions_.find(key);
  if (m.deletion) {
    // A deletion need not carry a whole description (RFC 2974 §3: the o= line suffices).
    if (it == sessions_.end()) return c;
    c.outcome = Outcome::deleted;
    c.session = std::move(it->second);
    sessions_.erase(it);
    return c;
  }
  if (it != sessions_.end() && it->second.sdp == m.sdp) {
    heard_again(it->second, now);
    c.outcome = Outcome::refreshed;
    c.session = it->second;
    return c;
  }
  std::string err;
  const auto sd = parse_sdp(m.sdp, err);
  if (!sd) {
    c.outcome = Outcome::invalid;
    c.error = err;
    c.session.key = key;
    c.session.origin = m.origin;
    return c;
  }
  if (!glob_.empty() && fnmatch(glob_.c_str(), sd->name.c_str(), 0) != 0) {
    filtered_keys_[key] = true;
    c.session.name = sd->name;
    return c;
  }
  if (it == sessions_.end()) {
    if (sessions_.size() >= max_) {
      c.outcome = Outcome::refused;
      c.session.name = sd->name;
      c.session.origin = m.origin;
      return c;
    }
    SapSession s;
    s.key = key;
    s.origin = m.origin;
    s.msg_id_hash = m.msg_id_hash;
    s.name = sd->name;
    s.sdp = m.sdp;
    s.first_heard = s.last_heard = now;
    s.announcements = 1;
    c.outcome = Outcome::added;
    c.session = s;
    sessions_.emplace(key, std::move(s));
    return c;
  }
  SapSession& s = it->second;
  s.name = sd->name;
  s.sdp = m.sdp;
  heard_again(s, now);
  c.outcome = Outcome::changed;
  c.session = s;
  return c;
}

std::vector<SapSession> SapDirectory::expire(mono_ns_t now) {
  std::vector<SapSession> gone;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now - it->second.last_heard > it->second.timeout_ns()) {
      gone.push_back(std::move(it->second));
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  return gone;
}

}  // namespace rtpnode
