// The sources of a node and who becomes one (issue #13): admission of new streams -- RFC 3550
// A.1 probation for a new SSRC, --max-sources with each refused stream counted once, a bounded
// probation table with a per-host share -- and their end: --source-timeout, BYE drain (a source
// leaves once the audio it sent has played), and the final statistics of the last departed
// sources. What a new source is made of (decoder, mixer, timeline) is the factory's business.
//
// Thread: loop only. No I/O beyond one stderr line per join and leave (`log`), so tests drive
// it with scripted packets, a fake clock and a factory of their own.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "node/event_watcher.hpp"
#include "node/source.hpp"
#include "node/stats_model.hpp"
#include "rtp/rtp_header.hpp"

namespace rtpnode {

/// The key of an RTP source: listen port and SSRC (RFC 3550 §8: an SSRC is unique within its
/// session, and each listen port is a session).
constexpr std::uint64_t source_key(std::uint16_t port, std::uint32_t ssrc) noexcept {
  return (std::uint64_t{port} << 32) | ssrc;
}
/// The key of a second (third, ...) sender using the SSRC of `key`'s source from another
/// transport address `from` (IP and port): an SSRC collision (RFC 3550 §8.2), e.g. two PipeWire
/// 0.3.65 senders, whose unseeded rand() gives both SSRC 0x66334873. The sender is played as a
/// source of its own: bits 48..62 hold a non-zero 15-bit hash of `from` (the low 48 bits stay
/// port and SSRC). Any thread; pure.
std::uint64_t collision_key(std::uint64_t key, const sockaddr* from) noexcept;
/// True when `a` and `b` are the same transport address (family, IP address and port).
bool same_transport(const sockaddr* a, const sockaddr* b) noexcept;
/// The key of a headerless PCM source: listen port and a 48-bit hash of the sender's address.
std::uint64_t raw_source_key(std::uint16_t port, const sockaddr* from) noexcept;
/// "10.0.0.1:5004" / "[::1]:5004".
std::string address_text(const sockaddr* sa);

class SourceTable {
 public:
  /// What the factory is asked to make.
  struct NewSource {
    std::uint64_t key = 0;
    std::uint16_t port = 0;           ///< listen port
    const sockaddr* from = nullptr;   ///< the sender
    std::uint32_t ssrc = 0;           ///< 0 for raw
    std::uint8_t payload_type = 255;  ///< 255 for raw
    const PayloadFormat* format = nullptr;
    bool raw = false;
    mono_ns_t first_arrival = 0;
    const ListenSpec* listen = nullptr;  ///< what it arrived on; valid during the factory call
  };
  /// Makes a source; may throw std::exception (a codec that cannot be created): the stream is
  /// then refused and counted.
  using Factory = std::function<std::unique_ptr<Source>(const NewSource&)>;
  struct Limits {
    int max_sources = 64;                                    ///< --max-sources: active + draining
    std::chrono::nanoseconds source_timeout{5'000'000'000};  ///< 0: never
    bool sync_rtcp = true;  ///< --sync rtcp: the NTP timeline is kept (update_timeline)
    /// --max-sources-per-host: active + draining sources whose RTP comes from one IP address
    /// (any port); 0 = no limit; loopback senders are not limited. Keeps one remote host (a
    /// flood of valid-looking streams, a runaway sender) from taking every slot of --max-sources.
    int max_sources_per_host = 0;
    /// --sync absolute (issue #19): the timeline is the wall clock (follow_wall_clock), on while
    /// one active source has an SR.
    bool sync_absolute = false;
    std::chrono::nanoseconds playout_delay{200'000'000};  ///< --playout-delay
  };

  struct Counters {
    std::uint64_t sources_refused = 0;    ///< streams refused (--max-sources, factory error)
    std::uint64_t probation_dropped = 0;  ///< packets dropped: their host's share of the
                                          ///< probation table was full
    /// Candidates pushed out of a full probation table by a newer one (oldest first): a flood
    /// from many addresses cannot keep a new stream out unless it turns the table over faster
    /// than the stream's packet time.
    std::uint64_t probation_evicted = 0;
    /// Streams refused because their host already had --max-sources-per-host sources (each
    /// stream once while it stays refused; also counted in sources_refused).
    std::uint64_t host_limit_refused = 0;
  };
  /// Final statistics kept of departed sources.
  static constexpr std::size_t kMaxDeparted = 64;
  /// A probation candidate with no second packet for this long is forgotten when room is needed.
  static constexpr mono_ns_t kProbationForgetNs = 1'000'000'000;

  SourceTable(Limits limits, Factory factory, EventWatcher& events, std::ostream& log);

  /// The active source of `key`, or null.
  [[nodiscard]] Source* find(std::uint64_t key) const;
  /// An admitted RTP source with the packet that was held on probation (play it first).
  struct Admitted {
    Source* source = nullptr;
    std::vector<std::uint8_t> first;
    mono_ns_t first_arrival = 0;
  };
  /// A valid RTP packet (`h`, `data`) of an SSRC with no source yet, its payload type mapped to
  /// `format`. RFC 3550 A.1: the first packet is held; the next in sequence from the same host
  /// admits the source (a packet out of sequence from that host starts over; another host's is
  /// ignored). Returns the new source, or nullopt (on probation, refused or dropped).
  std::optional<Admitted> on_candidate(std::uint64_t key, std::uint16_t port,
                                       const RtpHeaderView& h, std::span<const std::uint8_t> data,
                                       const sockaddr* from, const PayloadFormat& format,
                                       mono_ns_t now, const ListenSpec* listen = nullptr);
  /// A headerless PCM datagram: its source, created at once (no sequence numbers to check), or
  /// null when refused.
  Source* raw_source(std::uint64_t key, std::uint16_t port, const sockaddr* from,
                     const PayloadFormat& format, mono_ns_t now,
                     const ListenSpec* listen = nullptr);
  /// An RTCP BYE for `key` from `from`: ends its probation if that came from the same host.
  void on_bye(std::uint64_t key, const sockaddr* from);
  /// Frees draining sources whose audio has played (their statistics become departed), and at
  /// most every 100 ms (at once when a source is leaving) moves sources that timed out or said
  /// BYE to draining; `now_frame` is the device frame playing now. Returns how many sources
  /// stopped being active.
  std::size_t expire(mono_ns_t now, frames_t now_frame);

  /// The node's NTP timeline (sync_timeline.hpp), for the factory to hand to RTP sources.
  [[nodiscard]] SyncTimeline& timeline() noexcept { return timeline_; }
  /// The timeline policy (--sync rtcp): on while at least two active sources have an SR (one
  /// alone follows its own target delay), defined from where a source with an SR already plays,
  /// so that it does not move when a second one arrives. Called after every admission and
  /// departure here; the demux calls it after SRs.
  void update_timeline();
  /// Thread: loop. --sync absolute: maps the timeline from the wall clock -- the device frame at
  /// the DAC at monotonic `now` is clock.position_at(now) - output latency, at wall-clock time
  /// `now + ntp_minus_monotonic_ns` (WallClock) -- while an active source has an SR and the
  /// device clock is valid. Returns the mapping's move, frames (SyncTimeline::set_wall_clock;
  /// a move beyond 1 ms re-placed every source); 0 otherwise.
  double follow_wall_clock(const DeviceClock& clock, mono_ns_t now,
                           std::int64_t ntp_minus_monotonic_ns);
  /// Thread: loop. The device jumped by `behind` frames (DeviceClock::last_jump_frames): the
  /// timeline and every source move back to their delays (SyncTimeline::on_device_jump,
  /// Source::on_device_jump).
  void on_device_jump(frames_t behind, const DeviceClock& clock, mono_ns_t now);

  /// Sums over every source this node has had: the departed (folded in as they leave, also
  /// past the kMaxDeparted kept for reports), the draining and the active. Each figure never
  /// decreases between calls (a packet counted lost that comes late lowers a source's
  /// packets_lost; the total holds its high-water mark), so that a Prometheus counter scraped
  /// every 15 s does not miss a 3 s call that came and went. Thread: loop.
  struct Totals {
    std::uint64_t sources = 0;
    std::uint64_t packets_received = 0, packets_lost = 0, packets_late = 0;
    std::uint64_t packets_duplicate = 0, underruns = 0, underrun_frames = 0;
    double concealed_s = 0;  ///< frames_concealed / audio rate, summed
  };
  [[nodiscard]] Totals totals() const;

  /// Active sources, in order of arrival.
  [[nodiscard]] const std::vector<Source*>& active() const noexcept { return order_; }
  /// Reports of the active, draining ("leaving") and, if asked, departed sources.
  [[nodiscard]] std::vector<SourceReport> reports(bool with_departed) const;
  [[nodiscard]] std::size_t on_probation() const noexcept { return probation_.size(); }
  [[nodiscard]] std::size_t draining() const noexcept { return retiring_.size(); }
  [[nodiscard]] const Counters& counters() const noexcept { return counters_; }

 private:
  /// A new SSRC on probation (RFC 3550 A.1: MIN_SEQUENTIAL = 2 in-sequence packets admit it).
  struct Probation {
    std::vector<std::uint8_t> first;  ///< the held packet, played once admitted
    mono_ns_t first_arrival = 0;
    std::uint16_t last_seq = 0;
    sockaddr_storage from{};  ///< its sender (a BYE from elsewhere does not end it)
  };
  using ProbationMap = std::unordered_map<std::uint64_t, Probation>;
  [[nodiscard]] bool full() const noexcept;
  /// True when the host `from` has --max-sources-per-host sources.
  [[nodiscard]] bool host_full(const sockaddr* from) const;
  /// Refuses at the limits (--max-sources, --max-sources-per-host); true when refused.
  bool refused_at_limits(const NewSource& n);
  Source* create(const NewSource& n, mono_ns_t now);
  void refuse(std::uint64_t key, mono_ns_t now, const std::string& why);
  ProbationMap::iterator erase_probation(ProbationMap::iterator it);
  /// Removes the candidate that started probation first; false when there is none.
  bool evict_oldest_probation();
  /// Records that `key` (re)started probation at `at`; drops stale order entries when they
  /// outnumber the candidates.
  void note_probation_start(std::uint64_t key, mono_ns_t at);

  Limits limits_;
  Factory factory_;
  EventWatcher& events_;
  std::ostream& log_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Source>> sources_;
  std::vector<Source*> order_;
  /// Sources detached from the mixer, freed once it hands their stream back.
  std::vector<std::unique_ptr<Source>> retiring_;
  std::deque<SourceStats> departed_;
  Totals departed_totals_;     ///< every departed source's final figures
  mutable Totals high_water_;  ///< what totals() last returned
  ProbationMap probation_;
  /// Candidates in the order they (re)started probation: (key, first_arrival); an entry whose
  /// candidate is gone or restarted since is stale and skipped.
  std::deque<std::pair<std::uint64_t, mono_ns_t>> probation_order_;
  std::unordered_map<std::uint64_t, std::size_t> probation_hosts_;  ///< entries per sending host
  /// Active + draining sources per sending host (host_key of the address that admitted them).
  std::unordered_map<std::uint64_t, int> source_hosts_;
  std::unordered_map<const Source*, std::uint64_t> host_of_;  ///< each source's host_key
  /// Streams refused at --max-sources (key -> their last packet), so each is refused and counted
  /// once, and its packets skip probation until a slot frees or it goes quiet.
  std::unordered_map<std::uint64_t, mono_ns_t> refused_;
  mono_ns_t last_timeout_check_ = 0;
  Counters counters_;
  bool warned_refused_ = false;
  SyncTimeline timeline_;
};

}  // namespace rtpnode
