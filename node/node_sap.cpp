// Node's SAP discovery (--sap, issue #17): announced sessions open listens as --sdp files do,
// and deletions and timeouts close them.
#include <algorithm>
#include <iostream>

#include <nlohmann/json.hpp>

#include "node/node.hpp"
#include "rtp/sap.hpp"

namespace rtpnode {

void Node::on_sap(std::span<const std::uint8_t> bytes, const sockaddr* from, mono_ns_t arrival) {
  if (!demux_->allowed(from)) return;
  ++sap_packets_;
  const std::string announcer = address_text(from);
  std::string err;
  const auto msg = parse_sap(bytes, err);
  if (!msg) {
    ++sap_invalid_;
    if (sap_warned_.insert(announcer + " bad").second)
      std::cerr << "rtpnode: warning: SAP from " << announcer << ": " << err
                << " (counted as sap_invalid; further ones are not logged)\n";
    return;
  }
  const SapDirectory::Change c = sap_dir_->on_message(*msg, arrival);
  using O = SapDirectory::Outcome;
  switch (c.outcome) {
    case O::added:
      open_sap_session(c.session);
      break;
    case O::changed:
      close_sap_session(c.session, "changed");
      open_sap_session(c.session);
      break;
    case O::deleted:
      close_sap_session(c.session, "deleted");
      break;
    case O::refreshed:
      break;
    case O::ignored:
      if (!c.session.name.empty() &&
          sap_warned_.insert(msg->origin + "#" + std::to_string(msg->msg_id_hash)).second)
        std::cerr << "rtpnode: SAP: session '" << c.session.name << "' from " << msg->origin
                  << " left out by --sap-filter " << cfg_.sap_filter << "\n";
      break;
    case O::refused:
      if (sap_warned_.insert(announcer + " full").second)
        std::cerr << "rtpnode: warning: SAP: session '" << c.session.name << "' from "
                  << c.session.origin << " not received: " << cfg_.max_sources
                  << " sessions already (--max-sources)\n";
      break;
    case O::invalid:
      ++sap_invalid_;
      if (sap_warned_.insert(announcer + " sdp").second)
        std::cerr << "rtpnode: warning: SAP from " << announcer << ": its SDP: " << c.error
                  << " (counted as sap_invalid; further ones are not logged)\n";
      break;
  }
}

std::size_t Node::sap_stream_budget() const noexcept {
  return std::max<std::size_t>(16, 4 * static_cast<std::size_t>(cfg_.max_sources));
}

void Node::open_sap_session(const SapSession& s) {
  const std::string label = "SAP from " + s.origin;
  std::string err;
  auto specs = listens_from_sdp_text(s.sdp, label, cfg_.payload_flags, err);
  nlohmann::json streams = nlohmann::json::array();
  std::vector<std::size_t>& opened = sap_listens_[s.key];
  if (!specs) {
    std::cerr << "rtpnode: warning: " << err << "\n";
    event("sap_session",
          {{"action", "refused"}, {"name", s.name}, {"origin", s.origin}, {"error", err}});
    return;
  }
  std::size_t open_in_all = 0;
  for (const auto& [key, listens] : sap_listens_) open_in_all += listens.size();
  std::size_t refused = 0;
  for (ListenSpec& spec : *specs) {
    if (opened.size() >= kMaxSapStreamsPerSession || open_in_all >= sap_stream_budget()) {
      ++refused;
      continue;
    }
    bool open_already = false;
    for (std::size_t i = 0; i < cfg_.listens.size(); ++i)
      if (!closed_listens_.contains(i) && cfg_.listens[i].address == spec.address &&
          cfg_.listens[i].port == spec.port)
        open_already = true;
    if (open_already) {
      std::cerr << "rtpnode: SAP: " << spec.sdp_summary << ": " << spec.describe()
                << " is received already\n";
      continue;
    }
    std::size_t index = cfg_.listens.size();
    if (!closed_listens_.empty()) {
      index = *closed_listens_.begin();
      closed_listens_.erase(closed_listens_.begin());
      cfg_.listens[index] = spec;
    } else {
      cfg_.listens.push_back(spec);
    }
    try {
      udp_->add(cfg_.listens[index], index);
    } catch (const std::exception& e) {
      closed_listens_.insert(index);
      std::cerr << "rtpnode: warning: " << spec.sdp_summary << ": " << e.what() << "\n";
      continue;
    }
    opened.push_back(index);
    ++open_in_all;
    std::cerr << "rtpnode: SAP: receiving " << spec.describe() << ": " << spec.sdp_summary << "\n";
    streams.push_back({{"listen", spec.describe()}, {"summary", spec.sdp_summary}});
  }
  if (refused > 0) {
    sap_streams_refused_ += refused;
    if (sap_warned_.insert(s.origin + " streams").second)
      std::cerr << "rtpnode: warning: SAP: session '" << s.name << "' from " << s.origin << ": "
                << refused << " of its " << specs->size() << " streams not received: at most "
                << kMaxSapStreamsPerSession << " per session and " << sap_stream_budget()
                << " announced streams in all (4 x --max-sources); counted as "
                   "sap_streams_refused, further ones are not logged\n";
  }
  event("sap_session", {{"action", "announced"},
                        {"name", s.name},
                        {"origin", s.origin},
                        {"streams", streams},
                        {"streams_refused", refused}});
}

void Node::close_sap_session(const SapSession& s, const char* why) {
  const auto it = sap_listens_.find(s.key);
  if (it == sap_listens_.end()) return;
  // The sources of its listens leave as any silent source does (--source-timeout): a deleted
  // session's sender has stopped, and what it sent last still plays out.
  for (std::size_t index : it->second) {
    udp_->remove(index);
    closed_listens_.insert(index);
  }
  std::cerr << "rtpnode: SAP: session '" << s.name << "' from " << s.origin << " " << why << ": "
            << it->second.size() << " listen(s) closed\n";
  event("sap_session", {{"action", why}, {"name", s.name}, {"origin", s.origin}});
  sap_listens_.erase(it);
}

void Node::expire_sap_sessions(mono_ns_t now) {
  if (!sap_dir_ || now < next_sap_expiry_) return;
  next_sap_expiry_ = now + 1'000'000'000;
  for (const SapSession& s : sap_dir_->expire(now)) close_sap_session(s, "timed_out");
}

}  // namespace rtpnode
