// The sessions SAP announces (RFC 2974), for `--sap`: which are current, which changed, which
// were deleted or timed out. Pure bookkeeping with injected time; Node opens and closes the
// listeners the changes name.
//
// Thread: loop (not thread-safe).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "rtp/sap.hpp"
#include "rtp/units.hpp"

namespace rtpnode {

/// One announced session.
struct SapSession {
  std::string key;     ///< "ORIGIN#HASH": the announcement's identity (RFC 2974 §3)
  std::string origin;  ///< originating source
  std::uint16_t msg_id_hash = 0;
  std::string name;  ///< the SDP's s=
  std::string sdp;   ///< the last description announced
  mono_ns_t first_heard = 0, last_heard = 0;
  mono_ns_t interval_ns = 0;  ///< the last gap between two announcements; 0 = one heard so far
  std::uint64_t announcements = 0;
  /// No announcement for 10 x the announcement interval (RFC 2974 §3.1 advises 10 x or an hour;
  /// PipeWire announces every 5 s, so 50 s here), the interval clamped to [kMinInterval,
  /// kDefaultInterval] and kDefaultInterval while only one was heard.
  [[nodiscard]] mono_ns_t timeout_ns() const noexcept;
  static constexpr mono_ns_t kMinInterval = 1'000'000'000;        ///< 1 s
  static constexpr mono_ns_t kDefaultInterval = 300'000'000'000;  ///< 300 s, RFC 2974's floor
};

class SapDirectory {
 public:
  /// `name_glob`: fnmatch(3) pattern the session name must match ("" = every session).
  /// `max_sessions` >= 1: announcements beyond it are refused (counted) until one ends.
  SapDirectory(std::string name_glob, std::size_t max_sessions);

  /// What an announcement or deletion did.
  enum class Outcome {
    added,      ///< a new session: open its streams
    changed,    ///< its description changed: reopen its streams
    refreshed,  ///< the same description again
    deleted,    ///< a deletion of a known session: close its streams
    ignored,    ///< a deletion of an unknown session, or a name the filter leaves out
    refused,    ///< max_sessions current already
    invalid,    ///< its SDP does not parse (see error)
  };
  struct Change {
    Outcome outcome = Outcome::ignored;
    SapSession session;  ///< as it is now (added, changed, refreshed) or was (deleted)
    std::string error;   ///< invalid: the SDP parser's message
  };
  /// Applies one SAP message heard at `now`.
  Change on_message(const SapMessage& m, mono_ns_t now);
  /// Removes and returns the sessions whose timeout passed by `now`.
  std::vector<SapSession> expire(mono_ns_t now);

  [[nodiscard]] const std::map<std::string, SapSession>& sessions() const noexcept {
    return sessions_;
  }
  /// Announcements whose name the glob leaves out, ever (one per key, not per repetition).
  [[nodiscard]] std::uint64_t filtered() const noexcept { return filtered_keys_.size(); }

 private:
  /// Another announcement of a known session at `now`: its interval, last time and count.
  static void heard_again(SapSession& s, mono_ns_t now) noexcept;

  std::string glob_;
  std::size_t max_;
  std::map<std::string, SapSession> sessions_;
  std::map<std::string, bool> filtered_keys_;
};

}  // namespace rtpnode
