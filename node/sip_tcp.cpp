#include "node/sip_tcp.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string_view>

namespace rtpnode {

namespace {

/// Family, address and port of both ends: one direction of one connection.
std::string flow_key(const sockaddr_storage& src, const sockaddr_storage& dst) {
  std::string key;
  for (const sockaddr_storage* ss : {&src, &dst}) {
    if (ss->ss_family == AF_INET) {
      const auto& a = reinterpret_cast<const sockaddr_in&>(*ss);
      key.append(reinterpret_cast<const char*>(&a.sin_addr), 4);
      key.append(reinterpret_cast<const char*>(&a.sin_port), 2);
    } else {
      const auto& a = reinterpret_cast<const sockaddr_in6&>(*ss);
      key.append(reinterpret_cast<const char*>(&a.sin6_addr), 16);
      key.append(reinterpret_cast<const char*>(&a.sin6_port), 2);
    }
  }
  return key;
}

/// Signed distance from `from` to `to` in sequence space (RFC 793 §3.3: modulo 2^32).
std::int32_t seq_diff(std::uint32_t to, std::uint32_t from) {
  return static_cast<std::int32_t>(to - from);
}

/// Whether `line` (without its line end) starts a SIP message: "SIP/2.0 NNN ..." or
/// "METHOD REQUEST-URI SIP/2.0" with an upper-case method (RFC 3261 §7.1, §7.2).
bool is_start_line(std::string_view line) {
  if (line.size() >= 12 && line.substr(0, 8) == "SIP/2.0 ")
    return std::isdigit(static_cast<unsigned char>(line[8])) &&
           std::isdigit(static_cast<unsigned char>(line[9])) &&
           std::isdigit(static_cast<unsigned char>(line[10]));
  const auto sp = line.find(' ');
  if (sp == 0 || sp == std::string_view::npos || line.size() < 8 ||
      line.substr(line.size() - 8) != " SIP/2.0")
    return false;
  for (std::size_t i = 0; i < sp; ++i)
    if (!std::isupper(static_cast<unsigned char>(line[i]))) return false;
  return true;
}

/// The Content-Length of a message header (`head`: its lines, without the empty line): the
/// value of "Content-Length" or its compact form "l" (case-insensitive), 0 when absent, -1 when
/// not a number.
long content_length(std::string_view head) {
  std::size_t at = 0;
  while (at < head.size()) {
    auto end = head.find('\n', at);
    if (end == std::string_view::npos) end = head.size();
    std::string_view line = head.substr(at, end - at);
    at = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.pop_back();
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name != "content-length" && name != "l") continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    long n = 0;
    std::size_t digits = 0;
    for (char c : value) {
      if (!std::isdigit(static_cast<unsigned char>(c))) break;
      if (n > 10'000'000) return -1;
      n = n * 10 + (c - '0');
      ++digits;
    }
    return digits == 0 ? -1 : n;
  }
  return 0;
}

}  // namespace

void SipTcpStreams::on_segment(const sockaddr_storage& source, const sockaddr_storage& destination,
                               std::uint32_t seq, bool syn, bool fin, bool rst,
                               std::span<const std::uint8_t> payload, std::deque<Message>& out) {
  ++stats_.segments;
  const std::string key = flow_key(source, destination);
  if (rst) {
    forget(key);
    return;
  }
  auto it = flows_.find(key);
  if (it != flows_.end() && syn) {  // the ports reused by a new connection
    forget(key);
    it = flows_.end();
  }
  if (it == flows_.end()) {
    if (payload.empty() && !syn) return;  // a bare ACK or FIN of a connection never seen
    if (flows_.size() >= kMaxFlows) {
      forget(lru_.back());
      ++stats_.flows_dropped;
    }
    lru_.push_front(key);
    it = flows_.emplace(key, Flow{}).first;
    Flow& f = it->second;
    f.source = source;
    f.destination = destination;
    f.next_seq = seq + (syn ? 1u : 0u);  // SYN takes one sequence number (RFC 793 §3.3)
    f.synced = syn;
    f.lru = lru_.begin();
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  Flow& f = it->second;
  const std::uint32_t data_seq = seq + (syn ? 1u : 0u);
  std::span<const std::uint8_t> bytes = payload;
  const std::int32_t off = seq_diff(data_seq, f.next_seq);
  if (!bytes.empty()) {
    if (off < 0) {  // a retransmission: only what is new is taken
      const auto old = static_cast<std::size_t>(-static_cast<std::int64_t>(off));
      bytes = old >= bytes.size() ? std::span<const std::uint8_t>() : bytes.subspan(old);
      if (!bytes.empty()) append(f, bytes);
    } else if (off > 0) {  // beyond a hole: wait for it to fill
      auto& h = f.held[data_seq];
      if (bytes.size() > h.size()) h.assign(bytes.begin(), bytes.end());
      if (f.held.size() > kMaxHeld) {
        // The hole will not fill (not captured): skip it, at the held segment nearest to it.
        auto nearest = f.held.begin();
        for (auto h2 = f.held.begin(); h2 != f.held.end(); ++h2)
          if (seq_diff(h2->first, f.next_seq) < seq_diff(nearest->first, f.next_seq)) nearest = h2;
        ++stats_.gaps;
        f.next_seq = nearest->first;
        stats_.skipped_bytes += f.buffer.size();
        f.buffer.clear();
        f.synced = false;
      }
    } else {
      append(f, bytes);
    }
    fill_from_held(f);
    extract(f, out);
  }
  if (fin) forget(key);
}

void SipTcpStreams::append(Flow& f, std::span<const std::uint8_t> bytes) {
  f.buffer.insert(f.buffer.end(), bytes.begin(), bytes.end());
  f.next_seq += static_cast<std::uint32_t>(bytes.size());
}

void SipTcpStreams::fill_from_held(Flow& f) {
  for (bool progress = true; progress && !f.held.empty();) {
    progress = false;
    for (auto h = f.held.begin(); h != f.held.end();) {
      const std::int32_t off = seq_diff(h->first, f.next_seq);
      if (off > 0) {
        ++h;
        continue;
      }
      const auto old = static_cast<std::size_t>(-static_cast<std::int64_t>(off));
      if (old < h->second.size()) append(f, std::span<const std::uint8_t>(h->second).subspan(old));
      h = f.held.erase(h);
      progress = true;
    }
  }
}

void SipTcpStreams::extract(Flow& f, std::deque<Message>& out) {
  auto& b = f.buffer;
  auto drop = [&](std::size_t n) {
    b.erase(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
  };
  for (;;) {
    const std::string_view text(reinterpret_cast<const char*>(b.data()), b.size());
    if (!f.synced) {
      // Look for a whole line that starts a message, at the start or after a line end.
      std::size_t line = 0, found = std::string_view::npos, last_line = 0;
      while (line < text.size()) {
        const auto end = text.find('\n', line);
        if (end == std::string_view::npos) break;
        std::string_view l = text.substr(line, end - line);
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (is_start_line(l)) {
          found = line;
          break;
        }
        line = end + 1;
        last_line = line;
      }
      if (found == std::string_view::npos) {
        stats_.skipped_bytes += last_line;  // keep the unfinished last line
        drop(last_line);
        if (b.size() > kMaxBuffered) {
          ++stats_.oversized;
          stats_.skipped_bytes += b.size();
          b.clear();
        }
        return;
      }
      stats_.skipped_bytes += found;
      drop(found);
      f.synced = true;
      continue;
    }
    std::size_t lead = 0;  // RFC 5626 keep-alives (CRLF pairs) between messages
    while (lead < text.size() && (text[lead] == '\r' || text[lead] == '\n')) ++lead;
    if (lead > 0) {
      drop(lead);
      continue;
    }
    const auto head_end = text.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
      if (b.size() > kMaxBuffered) {
        ++stats_.oversized;
        stats_.skipped_bytes += b.size();
        b.clear();
        f.synced = false;
      }
      return;
    }
    const long length = content_length(text.substr(0, head_end));
    if (length < 0 || static_cast<std::size_t>(length) > kMaxBuffered) {
      ++stats_.oversized;  // no framing to trust: find the next message start
      stats_.skipped_bytes += head_end + 4;
      drop(head_end + 4);
      f.synced = false;
      continue;
    }
    const std::size_t total = head_end + 4 + static_cast<std::size_t>(length);
    if (b.size() < total) return;  // the body is still coming
    Message m;
    m.source = f.source;
    m.destination = f.destination;
    m.bytes.assign(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(total));
    out.push_back(std::move(m));
    ++stats_.messages;
    drop(total);
  }
}

void SipTcpStreams::forget(const std::string& key) {
  const auto it = flows_.find(key);
  if (it == flows_.end()) return;
  lru_.erase(it->second.lru);
  flows_.erase(it);
}

}  // namespace rtpnode
