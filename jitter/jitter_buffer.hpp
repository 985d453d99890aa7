// Jitter buffer: holds a source's packets by extended sequence number and decides, step by step,
// what to play next: a contiguous packet (decode it), a missing one whose deadline has come
// (conceal it), or a gap the sender left in the timestamps (fill it). Pure logic: packets,
// arrival times and the playout horizon come in as arguments, so it is tested with a fake clock.
//
// Timeline. The caller maps the device clock to this source's RTP timeline and passes the
// *horizon*: the extended RTP timestamp before which every tick must be produced now. Packets
// that are contiguous are released at once (the playout ring holds them until their device
// frame), so the horizon only decides when waiting for a missing packet ends. The fixed playout
// delay (issue #2; #3 makes it adaptive) is in the caller's horizon: horizon = RTP time of the
// device position plus render lead, anchored so the first packet plays `latency` after arrival.
//
// Rules (RFC 3550 §A.1 for sequence handling):
//  1. A packet whose sequence number was already received is a duplicate: counted, dropped.
//  2. A packet whose sequence number is below the next one to play, or whose timestamp lies
//     before the playout cursor, is late: counted, dropped. `resync_after_late` late packets in a
//     row, or one late packet after a stall (`stall_ticks` of concealment with an empty buffer),
//     report `resync`:
//     the sender restarted or paused its clock, and the caller re-anchors the source. A late
//     packet far from the stream (more than kMaxMisorder sequence numbers behind, the RFC 3550
//     A.1 MAX_MISORDER) is a restart candidate: if the next packet follows it in sequence
//     (A.1's "two sequential packets"), that one reports `resync` at once, so a restart plays
//     within the target delay plus one packet.
//  3. A packet more than `max_wait_ticks` ahead of the horizon reports `resync` too (a timestamp
//     jump: the sender restarted).
//  4. A packet `capacity` or more sequence numbers ahead of the next one grows the buffer (up to
//     `max_capacity_packets`) when its timestamp is within `grow_ticks` of the cursor: audio
//     that is due within the playout delay is held, whatever the packet time. Otherwise, or at
//     the ceiling, it evicts the oldest stored packets (counted as overflow) so that the
//     window slides.
//
// Memory (issue #16 finding 4): a slot's payload buffer is allocated when it first holds a
// payload larger than before, so a source holds what its packets need (20 ms Opus at 128 kbit/s:
// 320 B per slot), not capacity x the codec's largest packet.
//
// Thread: one owner (the loop thread in rtpnode). Allocates only in insert(), when a slot's
// payload or the slot count grows; next(), played(), discard() and reset() never allocate.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "rtp/units.hpp"

namespace rtpnode {

struct JitterBufferConfig {
  std::uint32_t clock_rate = 8000;     ///< RTP ticks per second, > 0
  std::size_t capacity_packets = 256;  ///< initial slots; rounded up to a power of two, >= 2
  /// Rule 4's ceiling on growth, slots (rounded up to a power of two); 0 = capacity_packets
  /// (the buffer never grows).
  std::size_t max_capacity_packets = 0;
  /// Rule 4: a packet this far or less ahead of the cursor grows the buffer instead of evicting;
  /// RTP ticks. 0 = max_wait_ticks.
  ext_ts_t grow_ticks = 0;
  /// Ceiling on the payload bytes all slots hold (their buffers' capacities); a payload that
  /// would pass it is dropped as `full` and counted as overflow. 0 = no ceiling.
  std::size_t max_stored_bytes = 0;
  std::size_t max_payload_bytes = 2048;  ///< larger payloads are refused (`too_large`)
  int resync_after_late = 3;             ///< consecutive late packets that trigger a resync
  ext_ts_t max_wait_ticks = 0;           ///< rule 3; 0 = 10 s worth of ticks
  ext_ts_t default_ptime_ticks = 0;      ///< concealment step before any packet was decoded;
                                         ///< 0 = 20 ms worth of ticks
  /// Length of one expand step (Action::expand), ticks; 0 = one packet. Short steps (5 ms in
  /// rtpnode) stop expanding close to when the late packet arrives, so less delay is added.
  ext_ts_t expand_ticks = 0;
  ext_ts_t stall_ticks = 0;  ///< concealment with an empty buffer for this long is a
                             ///< stall (rule 2); 0 = 200 ms worth of ticks: longer
                             ///< than ordinary burst loss, shorter than a pause
};

/// `full`: the payload would pass max_stored_bytes; dropped and counted as overflow.
enum class InsertResult : std::uint8_t { stored, duplicate, late, too_large, resync, full };

struct StoredPacket {
  ext_seq_t seq = 0;
  ext_ts_t ts = 0;
  mono_ns_t arrival_ns = 0;
  bool marker = false;
  bool comfort_noise = false;  ///< RFC 3389 comfort noise: plays as a gap up to the next packet
  std::uint32_t size = 0;
  const std::uint8_t* data = nullptr;
  [[nodiscard]] std::span<const std::uint8_t> payload() const { return {data, size}; }
};

/// Counters, monotonic, written by the owner thread.
struct JitterBufferCounters {
  std::uint64_t duplicate = 0;  ///< packets dropped by rule 1
  std::uint64_t late = 0;       ///< packets dropped by rule 2 (arrived after their deadline)
  std::uint64_t overflow = 0;   ///< stored packets evicted by rule 4, and payloads refused as full
  std::uint64_t too_large = 0;  ///< payloads over max_payload_bytes
  std::uint64_t grown = 0;      ///< times rule 4 doubled (or more) the slot count
  std::uint64_t resyncs = 0;    ///< times reset() was called after a resync report
  ext_ts_t expand_credited_ticks = 0;  ///< expanded ticks that turned out to cover lost packets
};

class JitterBuffer {
 public:
  /// RFC 3550 A.1 MAX_MISORDER: a packet further behind than this is a restart candidate.
  static constexpr ext_seq_t kMaxMisorder = 100;
  explicit JitterBuffer(const JitterBufferConfig& cfg);

  /// Stores a packet. `seq`/`ts` are extended (unwrapped) values; `horizon_ts` is the current
  /// playout horizon (ignored before the first packet, which anchors the cursor at its `ts`).
  [[nodiscard]] InsertResult insert(ext_seq_t seq, ext_ts_t ts, bool marker,
                                    std::span<const std::uint8_t> payload, mono_ns_t arrival_ns,
                                    ext_ts_t horizon_ts, bool comfort_noise = false);

  struct Action {
    enum class Kind : std::uint8_t {
      wait,     ///< nothing to do until a packet arrives or the horizon moves
      decode,   ///< decode `packet`; then call played(ticks decoded) or discard()
      conceal,  ///< the packet covering [cursor, cursor+ticks) is missing at its deadline and a
                ///< later packet is here: it is lost; conceal its span and move past it
      expand,   ///< missing at its deadline with nothing later stored (a delay spike or an
                ///< outage): conceal `ticks` without moving the cursor, so the playout delay
                ///< grows and the packet still plays when it comes (NetEq's "expand")
      gap,      ///< the sender left [cursor, cursor+ticks) empty (DTX, pause): fill it
    };
    Kind kind = Kind::wait;
    /// decode: the packet to decode; valid until played()/discard().
    /// conceal: the stored packet that starts right where the concealed span ends (its Opus
    /// in-band FEC can rebuild the span), or nullptr.
    const StoredPacket* packet = nullptr;
    /// conceal: the lowest stored packet after the concealed span, adjacent or not (RFC 2198
    /// redundancy of distance > 1 may rebuild the span from it or the ones after it), or nullptr.
    const StoredPacket* later = nullptr;
    ext_ts_t ticks = 0;  ///< for conceal, expand and gap
  };

  /// The next playout step for a horizon (see the header comment). Stale packets found on the
  /// way (timestamp already behind the cursor) are dropped and counted late. `allow_expand`:
  /// a missing packet with nothing later stored gives `expand` instead of `conceal` (adaptive
  /// playout; the caller bounds how far the delay may grow).
  [[nodiscard]] Action next(ext_ts_t horizon_ts, bool allow_expand = false);

  /// Completes the step `a`: advances the cursor by `ticks` produced (for decode, the packet's
  /// decoded duration in RTP ticks) and releases the packet.
  void played(const Action& a, ext_ts_t ticks);

  /// Drops the packet of a decode step that could not be decoded (corrupt): it becomes missing.
  void discard(const Action& a);

  /// Forgets every packet and the cursor: the next insert anchors anew. Counts a resync.
  void reset();

  [[nodiscard]] bool started() const noexcept { return started_; }
  [[nodiscard]] ext_ts_t cursor_ts() const noexcept { return cursor_ts_; }
  [[nodiscard]] ext_seq_t next_seq() const noexcept { return next_seq_; }
  [[nodiscard]] std::size_t size() const noexcept { return stored_; }
  /// Current slot count (a power of two; grows by rule 4 up to max_capacity_packets).
  [[nodiscard]] std::size_t capacity() const noexcept { return slots_.size(); }
  /// Changes JitterBufferConfig::max_stored_bytes (0: no limit). Lowering it drops nothing
  /// held; later packets are refused (`full`) until it fits. Thread: the owner's.
  void set_max_stored_bytes(std::size_t bytes) noexcept { cfg_.max_stored_bytes = bytes; }
  [[nodiscard]] std::size_t max_stored_bytes() const noexcept { return cfg_.max_stored_bytes; }
  /// Payload bytes the slots' buffers hold (allocated, used or not), <= max_stored_bytes.
  [[nodiscard]] std::size_t stored_bytes() const noexcept { return bytes_; }
  /// The stored packet with sequence number `seq`, or nullptr; valid until the next insert,
  /// played() or discard(). O(1).
  [[nodiscard]] const StoredPacket* stored(ext_seq_t seq) const noexcept {
    const Slot& s = slots_[static_cast<std::size_t>(seq) & mask_];
    return s.used && s.pkt.seq == seq ? &s.pkt : nullptr;
  }
  [[nodiscard]] ext_ts_t ptime_ticks() const noexcept { return ptime_ticks_; }
  /// Highest extended sequence number stored or played since the last reset.
  [[nodiscard]] ext_seq_t highest_seq() const noexcept { return highest_seq_; }
  [[nodiscard]] const JitterBufferCounters& counters() const noexcept { return counters_; }

 private:
  struct Slot {
    StoredPacket pkt;
    std::vector<std::uint8_t> bytes;  ///< pkt.data points here while used
    bool used = false;
  };
  Slot& slot(ext_seq_t seq) { return slots_[static_cast<std::size_t>(seq) & mask_]; }
  void release(Slot& s);
  /// Rule 4's growth: at least `needed` slots (a power of two), used slots moved by sequence.
  void grow(std::size_t needed);
  [[nodiscard]] bool seen(ext_seq_t seq) const;
  void mark_seen(ext_seq_t seq);
  /// Lowest stored sequence number, or -1 when empty. O(capacity) worst case.
  [[nodiscard]] Slot* lowest();

  JitterBufferConfig cfg_;
  std::size_t mask_;
  std::vector<Slot> slots_;
  std::vector<ext_seq_t> seen_;  ///< ring of recently received sequence numbers (rule 1)
  std::size_t stored_ = 0;
  std::size_t bytes_ = 0;  ///< sum of the slots' buffer capacities
  bool started_ = false;
  ext_seq_t next_seq_ = 0;
  ext_seq_t highest_seq_ = 0;
  ext_ts_t cursor_ts_ = 0;
  ext_ts_t ptime_ticks_;
  int late_run_ = 0;
  bool have_probe_ = false;           ///< a far late packet was seen: restart candidate
  ext_seq_t probe_seq_ = 0;           ///< the sequence number that confirms it
  ext_ts_t empty_conceal_ticks_ = 0;  ///< concealed with nothing stored since the last decode
  bool stalled_ = false;              ///< empty_conceal_ticks_ reached stall_ticks
  ext_ts_t expanded_ticks_ = 0;       ///< expanded since the last decode, not yet credited
  bool contiguous_ = false;  ///< next_seq_ directly follows the last decoded packet (gap vs loss)
  JitterBufferCounters counters_;
};

}  // namespace rtpnode
