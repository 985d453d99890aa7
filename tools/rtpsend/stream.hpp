// One rtpsend stream: its audio, encoder, transport (an oRTP session for RTP, our own socket for
// RTCP; or a plain socket for headerless PCM), fault injector and send queue; and the SDP that
// describes the streams (RFC 4566).
#pragma once

#include <ortp/ortp.h>
#include <sys/socket.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "node/config.hpp"
#include "rtp/codec.hpp"
#include "tools/fault_injector.hpp"
#include "tools/rtpsend/audio_input.hpp"

namespace rtpnode::rtpsend {

/// Everything one stream needs: its audio, encoder, transport, fault injector and send queue.
struct Stream {
  struct Pending {
    std::int64_t send_at;
    std::uint64_t order;  // ties keep generation order
    std::uint16_t seq;
    std::uint32_t ts;
    bool marker;
    std::vector<std::uint8_t> payload;
    bool operator>(const Pending& o) const {
      return send_at != o.send_at ? send_at > o.send_at : order > o.order;
    }
  };

  std::string name;
  ListenSpec dest;
  PayloadFormat fmt;
  int pt = 0;
  int red_pt = -1;  ///< --red: the RTP payload type of RFC 2198 packets whose blocks are `pt`
  std::vector<std::uint8_t> red_previous;  ///< --red: the previous packet's payload ...
  std::uint32_t red_previous_ts = 0;       ///< ... and its timestamp
  bool red_has_previous = false;           ///< false at the start and after a pause or DTX
  std::uint32_t ssrc = 0;
  Audio audio;
  std::unique_ptr<Encoder> enc;
  RtpSession* session = nullptr;
  RtpProfile* profile = nullptr;
  int raw_fd = -1;
  sockaddr_storage raw_addr{};
  socklen_t raw_len = 0;
  std::unique_ptr<FaultInjector> injector;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> queue;
  std::ofstream trace;

  int frames_per_packet = 0;
  int ticks_per_packet = 0;
  std::uint64_t index = 0;  ///< next packet to generate
  std::size_t pos = 0;      ///< audio position (frames)
  bool live = false;        ///< --live-epoch: the input is a live feed; vpos is its position
  std::int64_t vpos = 0;    ///< live: input frame of the next packet's first frame (< 0: before it)
  int rtcp_fd = -1;         ///< our own RTCP socket (SR with the exact NTP <-> RTP mapping)
  sockaddr_storage rtcp_addr{};
  socklen_t rtcp_len = 0;
  std::int64_t next_sr_at = 0;  ///< monotonic ns of the next Sender Report
  std::uint64_t sent_payload_octets = 0;
  std::uint16_t seq = 0;      ///< sequence number of the next packet that goes out (or is lost)
  std::uint32_t ts_base = 0;  ///< RTP timestamp of packet 0, moved by jumps and SSRC changes
  /// --ts-refclk: the RFC 7273 offset (a=mediaclk:direct=): timestamp = reference clock time x
  /// clock rate + media_offset (mod 2^32). Random, like a random ts_base.
  std::uint32_t media_offset = 0;
  bool marker_next = true;  ///< first packet of a talkspurt (RFC 3551 §4.1)
  bool generating = true;
  std::uint64_t order = 0;
  bool ssrc_changed = false, seq_jumped = false, ts_jumped = false;

  std::uint64_t packets = 0, datagrams = 0, bytes = 0, dtx_suppressed = 0, paused = 0,
                ssrc_changes = 0;
  std::vector<double> late_us;

  ~Stream() {
    if (session) rtp_session_destroy(session);
    if (rtcp_fd >= 0) close(rtcp_fd);
    if (profile) rtp_profile_destroy(profile);
    if (raw_fd >= 0) close(raw_fd);
  }
};

/// The RFC 3551 / IANA encoding name: PCMU, PCMA, G722, L16, opus.
std::string encoding_name(Codec c);
/// The static payload type of a format (RFC 3551), else 96.
int default_pt(const PayloadFormat& f);
/// Opens the stream's transport to s.dest: RTP through oRTP and RTCP on port + 1, or a plain
/// socket when `raw`. `ttl`: multicast hops; `iface`: outgoing multicast interface ("" = the
/// kernel's choice). Throws std::runtime_error naming the flag or the destination.
void open_transport(Stream& s, int ttl, const std::string& iface, bool raw, bool rtcp = true);
struct Options;
struct Plan;
/// Builds every stream the flags ask for: input audio converted to the codec's channels and
/// rate, encoder, SSRC/sequence/timestamp (random unless --ssrc), fault injector (seed + index),
/// --trace-out file. Throws std::runtime_error naming the flag on a bad value.
std::vector<std::unique_ptr<Stream>> make_streams(const Options& o, const Plan& p,
                                                  std::random_device& rd);
/// Writes an SDP file describing `streams` (RFC 4566; RFC 7587 for Opus). Throws when it cannot.
void write_sdp(const std::string& path, const std::vector<std::unique_ptr<Stream>>& streams,
               double ptime_ms, const std::string& ts_refclk = "");

}  // namespace rtpnode::rtpsend
