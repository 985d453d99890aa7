#include "jitter/jitter_buffer.hpp"

#include <algorithm>
#include <bit>

namespace rtpnode {

namespace {
constexpr std::size_t kSeenWindow = 1024;  // sequence numbers remembered for duplicate detection
}

JitterBuffer::JitterBuffer(const JitterBufferConfig& cfg) : cfg_(cfg) {
  const std::size_t cap = std::bit_ceil(std::max<std::size_t>(cfg.capacity_packets, 2));
  cfg_.capacity_packets = cap;
  cfg_.max_capacity_packets = std::bit_ceil(std::max(cfg.max_capacity_packets, cap));
  mask_ = cap - 1;
  if (cfg_.max_wait_ticks <= 0) cfg_.max_wait_ticks = ext_ts_t{cfg.clock_rate} * 10;
  if (cfg_.grow_ticks <= 0) cfg_.grow_ticks = cfg_.max_wait_ticks;
  if (cfg_.default_ptime_ticks <= 0) cfg_.default_ptime_ticks = cfg.clock_rate / 50;
  if (cfg_.stall_ticks <= 0) cfg_.stall_ticks = cfg.clock_rate / 5;
  ptime_ticks_ = cfg_.default_ptime_ticks;
  slots_.resize(cap);
  seen_.assign(kSeenWindow, -1);
}

void JitterBuffer::grow(std::size_t needed) {
  const std::size_t cap = std::min(std::bit_ceil(needed), cfg_.max_capacity_packets);
  std::vector<Slot> next(cap);
  bytes_ = 0;
  for (Slot& s : slots_) {
    if (!s.used) continue;  // its buffer is freed with the old slots
    Slot& d = next[static_cast<std::size_t>(s.pkt.seq) & (cap - 1)];
    d = std::move(s);
    d.pkt.data = d.bytes.data();
    bytes_ += d.bytes.capacity();
  }
  slots_ = std::move(next);
  mask_ = cap - 1;
  ++counters_.grown;
}

bool JitterBuffer::seen(ext_seq_t seq) const {
  return seen_[static_cast<std::size_t>(seq) % kSeenWindow] == seq;
}
void JitterBuffer::mark_seen(ext_seq_t seq) {
  seen_[static_cast<std::size_t>(seq) % kSeenWindow] = seq;
}

void JitterBuffer::release(Slot& s) {
  if (s.used) {
    s.used = false;
    --stored_;
  }
}

JitterBuffer::Slot* JitterBuffer::lowest() {
  if (stored_ == 0) return nullptr;
  Slot* best = nullptr;
  // Scan forward from the next sequence number: slots are indexed by seq, so the first used
  // slot in window order is the lowest.
  for (ext_seq_t s = next_seq_;
       s <= highest_seq_ && s < next_seq_ + static_cast<ext_seq_t>(slots_.size()); ++s) {
    Slot& c = slot(s);
    if (c.used && c.pkt.seq == s) {
      best = &c;
      break;
    }
  }
  return best;
}

InsertResult JitterBuffer::insert(ext_seq_t seq, ext_ts_t ts, bool marker,
                                  std::span<const std::uint8_t> payload, mono_ns_t arrival_ns,
                                  ext_ts_t horizon_ts, bool comfort_noise) {
  if (payload.size() > cfg_.max_payload_bytes) {
    ++counters_.too_large;
    return InsertResult::too_large;
  }
  if (!started_) {
    started_ = true;
    next_seq_ = seq;
    highest_seq_ = seq;
    cursor_ts_ = ts;
    contiguous_ = true;
  } else {
    if (seen(seq)) {
      ++counters_.duplicate;
      return InsertResult::duplicate;
    }
    if (seq < next_seq_ || ts < cursor_ts_) {
      ++counters_.late;
      mark_seen(seq);
      ++late_run_;
      if (stalled_ || late_run_ >= cfg_.resync_after_late) return InsertResult::resync;
      // RFC 3550 A.1: a far jump is believed when the next packet follows it in sequence.
      if (have_probe_ && seq == probe_seq_) return InsertResult::resync;
      have_probe_ = next_seq_ - seq > kMaxMisorder;
      probe_seq_ = seq + 1;
      return InsertResult::late;
    }
    if (ts - std::max(horizon_ts, cursor_ts_) > cfg_.max_wait_ticks) return InsertResult::resync;
    if (seq - next_seq_ >= static_cast<ext_seq_t>(slots_.size()) &&
        slots_.size() < cfg_.max_capacity_packets && ts - cursor_ts_ <= cfg_.grow_ticks)
      grow(static_cast<std::size_t>(seq - next_seq_) + 1);
    const auto cap = static_cast<ext_seq_t>(slots_.size());
    if (seq - next_seq_ >= cap) {
      // Rule 4: slide the window so that `seq` fits, evicting what falls out of it.
      const ext_seq_t new_next = seq - cap + 1;
      for (ext_seq_t s = next_seq_; s < new_next && s <= highest_seq_; ++s) {
        Slot& c = slot(s);
        if (c.used && c.pkt.seq == s) {
          release(c);
          ++counters_.overflow;
        }
      }
      next_seq_ = new_next;
      contiguous_ = false;
    }
  }
  Slot& s = slot(seq);
  if (payload.size() > s.bytes.capacity()) {
    const std::size_t more = payload.size() - s.bytes.capacity();
    if (cfg_.max_stored_bytes > 0 && bytes_ + more > cfg_.max_stored_bytes) {
      // Free the buffers of the slots that hold nothing now, then try again.
      for (Slot& o : slots_) {
        if (o.used || &o == &s) continue;
        bytes_ -= o.bytes.capacity();
        std::vector<std::uint8_t>().swap(o.bytes);
      }
      if (bytes_ + more > cfg_.max_stored_bytes) {
        ++counters_.overflow;
        return InsertResult::full;
      }
    }
  }
  late_run_ = 0;
  have_probe_ = false;
  if (s.used) release(s);  // cannot hold another seq after rule 4, kept for safety
  s.used = true;
  ++stored_;
  s.pkt.seq = seq;
  s.pkt.ts = ts;
  s.pkt.marker = marker;
  s.pkt.comfort_noise = comfort_noise;
  s.pkt.arrival_ns = arrival_ns;
  s.pkt.size = static_cast<std::uint32_t>(payload.size());
  // assign() keeps the buffer's capacity: it allocates only for a larger payload than before.
  const std::size_t had = s.bytes.capacity();
  s.bytes.assign(payload.begin(), payload.end());
  bytes_ += s.bytes.capacity() - had;
  s.pkt.data = s.bytes.data();
  highest_seq_ = std::max(highest_seq_, seq);
  mark_seen(seq);
  return InsertResult::stored;
}

JitterBuffer::Action JitterBuffer::next(ext_ts_t horizon_ts, bool allow_expand) {
  Action a;
  if (!started_) return a;
  for (;;) {
    Slot* low = lowest();
    if (low && expanded_ticks_ > 0 && low->pkt.ts > cursor_ts_) {
      // A later packet came while expanding: the missing span before it was lost (or is a gap),
      // and the concealment already played in its place covers it. Move the cursor over it so
      // that a loss expanded at its deadline does not leave the delay raised.
      const ext_ts_t credit = std::min(expanded_ticks_, low->pkt.ts - cursor_ts_);
      cursor_ts_ += credit;
      expanded_ticks_ -= credit;
      counters_.expand_credited_ticks += credit;
      if (cursor_ts_ == low->pkt.ts && low->pkt.seq != next_seq_) {
        next_seq_ = low->pkt.seq;
        contiguous_ = false;
      }
    }
    if (low && low->pkt.ts < cursor_ts_) {
      // Its start was already concealed: it came too late to play.
      next_seq_ = low->pkt.seq + 1;
      release(*low);
      ++counters_.late;
      continue;
    }
    if (low && low->pkt.ts == cursor_ts_ && low->pkt.seq != next_seq_) {
      // The audio at the cursor is here, but the packets before it in sequence are not: their
      // spans were concealed and they came late (rejected at insert) or never. Play it; a
      // zero-length "concealment" of the gap would stall the caller's render loop (issue #13:
      // found by comparing Source with the trace harness).
      next_seq_ = low->pkt.seq;
      contiguous_ = false;
    }
    if (low && low->pkt.seq == next_seq_) {
      if (low->pkt.ts == cursor_ts_) {
        a.kind = Action::Kind::decode;
        a.packet = &low->pkt;
        return a;
      }
      if (contiguous_) {
        // The packet right after the last one played starts later: the sender sent nothing
        // for this span (DTX, pause). Nothing is missing, so there is no deadline to wait for.
        a.kind = Action::Kind::gap;
        a.ticks = low->pkt.ts - cursor_ts_;
        return a;
      }
    }
    if (cursor_ts_ >= horizon_ts) return a;  // still time for the missing packet to arrive
    a.ticks = ptime_ticks_;
    if (!low && allow_expand) {
      a.kind = Action::Kind::expand;
      if (cfg_.expand_ticks > 0) a.ticks = std::min(a.ticks, cfg_.expand_ticks);
      return a;
    }
    a.kind = Action::Kind::conceal;
    if (low) {
      a.later = &low->pkt;
      a.ticks = std::min(a.ticks, low->pkt.ts - cursor_ts_);
      if (low->pkt.ts - cursor_ts_ <= ptime_ticks_)
        next_seq_ = low->pkt.seq;  // the lost ones are gone
      if (low->pkt.ts - cursor_ts_ == a.ticks) a.packet = &low->pkt;
    }
    contiguous_ = false;
    return a;
  }
}

void JitterBuffer::played(const Action& a, ext_ts_t ticks) {
  switch (a.kind) {
    case Action::Kind::decode: {
      Slot& s = slot(a.packet->seq);
      next_seq_ = a.packet->seq + 1;
      if (ticks > 0) ptime_ticks_ = ticks;
      contiguous_ = true;
      release(s);
      expanded_ticks_ = 0;  // the packet came after all: the expansion was a delay spike
      empty_conceal_ticks_ = 0;
      stalled_ = false;
      break;
    }
    case Action::Kind::conceal:
    case Action::Kind::expand:
      if (stored_ == 0) {
        empty_conceal_ticks_ += ticks;
        stalled_ = empty_conceal_ticks_ >= cfg_.stall_ticks;
      }
      if (a.kind == Action::Kind::expand) {
        expanded_ticks_ += ticks;  // the cursor stays: the delay grew instead
        return;
      }
      break;
    case Action::Kind::gap:
    case Action::Kind::wait:
      break;
  }
  cursor_ts_ += ticks;
}

void JitterBuffer::discard(const Action& a) {
  if (a.kind != Action::Kind::decode) return;
  release(slot(a.packet->seq));
}

void JitterBuffer::reset() {
  for (auto& s : slots_) s.used = false;
  stored_ = 0;
  started_ = false;
  late_run_ = 0;
  have_probe_ = false;
  empty_conceal_ticks_ = 0;
  expanded_ticks_ = 0;
  stalled_ = false;
  ptime_ticks_ = cfg_.default_ptime_ticks;
  ++counters_.resyncs;
}

}  // namespace rtpnode
