// Payload formats: payload type → codec, RTP clock rate, audio rate and channels.
// Static assignments follow RFC 3551 §6 (table 4); dynamic ones (96..127) come from flags such as
// `--payload 96=opus/48000/2` (the SDP rtpmap syntax, RFC 4566 §6).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rtpnode {

/// telephone_event: RFC 4733 named events (DTMF digits), not audio: no decoder; the node
/// reports them (rtp/telephone_event.hpp).
/// The raw_* codecs are headerless PCM (--raw): little- or big-endian integers or 32-bit floats.
enum class Codec : std::uint8_t {
  pcmu,
  pcma,
  g722,
  l16,
  l24,
  opus,
  raw_s16le,
  telephone_event,
  raw_s16be,
  raw_s24le,
  raw_f32le,
  g729,
  amr_nb,
};

/// True for the headerless PCM codecs (raw_s16le, raw_s16be, raw_s24le, raw_f32le).
[[nodiscard]] constexpr bool is_raw(Codec c) noexcept {
  return c == Codec::raw_s16le || c == Codec::raw_s16be || c == Codec::raw_s24le ||
         c == Codec::raw_f32le;
}
/// Bytes per sample of the linear PCM codecs (L16, L24, raw_*); 0 for the others.
[[nodiscard]] constexpr std::size_t pcm_sample_bytes(Codec c) noexcept {
  switch (c) {
    case Codec::l16:
    case Codec::raw_s16le:
    case Codec::raw_s16be:
      return 2;
    case Codec::l24:
    case Codec::raw_s24le:
      return 3;
    case Codec::raw_f32le:
      return 4;
    default:
      return 0;
  }
}

/// Lower-case codec name as used on the command line and in JSON ("pcmu", "opus", ...).
std::string_view to_string(Codec c) noexcept;

/// What a payload type carries.
struct PayloadFormat {
  Codec codec = Codec::pcmu;
  std::uint32_t clock_rate = 8000;  ///< RTP timestamp ticks per second (RFC 3550 §5.1)
  std::uint32_t audio_rate = 8000;  ///< PCM frames per second the decoder produces; differs from
                                    ///< clock_rate only for G.722 (16000 vs 8000, RFC 3551 §4.5.2)
  std::uint16_t channels = 1;       ///< decoded channels, 1..64 (Opus 1..2)
  bool octet_aligned = false;       ///< AMR only: RFC 4867 §4.4 octet-aligned mode (SDP fmtp
                                    ///< octet-align=1) instead of the bandwidth-efficient default
  /// RFC 2198 redundant audio: each payload is a RED packet whose blocks of payload type
  /// `red_block_pt` carry this codec (the primary, and earlier packets' audio as redundancy);
  /// blocks of other payload types are skipped. SDP: a=rtpmap:PT red/CLOCK, a=fmtp:PT BLOCK/BLOCK.
  bool red = false;
  std::uint8_t red_block_pt = 0;  ///< 0..127, with `red`

  /// Decoded frames per RTP tick: audio_rate / clock_rate (2 for G.722, 1 otherwise).
  [[nodiscard]] double frames_per_tick() const noexcept {
    return static_cast<double>(audio_rate) / clock_rate;
  }
  /// Largest payload in bytes this format can need for `max_ptime_ms` of audio (for buffer sizing).
  [[nodiscard]] std::size_t max_payload_bytes(std::uint32_t max_ptime_ms = 120) const noexcept;
  /// "opus/48000/2" style description; "/ts=RATE" added when the RTP clock is overridden.
  [[nodiscard]] std::string describe() const;
};

/// Parses "CODEC/CLOCK[/CHANNELS][/ts=RTP_CLOCK]" (case-insensitive codec: pcmu, pcma, g722, g729,
/// amr, l16, l24, opus, telephone-event). L24 is RFC 3190 §4: big-endian signed 24-bit, any clock
/// rate. G729 is ITU-T G.729/G.729A with Annex B (RFC 3551 §4.5.6): 8000 Hz, 1 channel. AMR is
/// AMR-NB (RFC 4867): 8000 Hz, 1 channel, bandwidth-efficient unless the spec ends in
/// "/octet-align" (SDP fmtp octet-align=1); CRC, robust sorting and interleaving are not decoded.
/// "/red=BLOCK_PT" (0..127): the payload type carries RFC 2198 redundant audio whose blocks of
/// payload type BLOCK_PT are CODEC/CLOCK[/CHANNELS] (SDP a=rtpmap:98 red/8000 with a=fmtp:98 0/0
/// is `98=pcmu/8000/1/red=0`).
/// "/ts=RTP_CLOCK" (1000..384000) is for senders that break their codec's RTP clock rule: the
/// codec decodes as CODEC/CLOCK says while RTP timestamps are read at RTP_CLOCK ticks a second;
/// e.g. trx-tx's Opus, whose timestamps advance 160 per 20 ms: `opus/48000/2/ts=8000`
/// (RFC 7587 §4.1 says 48000).
/// Errors: returns std::nullopt and sets `error` to a message naming the offending part.
std::optional<PayloadFormat> parse_payload_format(std::string_view spec, std::string& error);

/// Parses the raw (headerless) PCM spec "FORMAT/RATE/CHANNELS", e.g. "s16le/8000/1"; FORMAT is
/// s16le, s16be, s24le (3 bytes a sample) or f32le (IEEE float, full scale +-1); RATE
/// 1000..384000 Hz, CHANNELS 1..64. Errors name the part that is wrong.
std::optional<PayloadFormat> parse_raw_format(std::string_view spec, std::string& error);

/// Payload type → format table. Starts with the RFC 3551 static audio types that telephony
/// senders use and rtpnode decodes: 0 PCMU/8000/1, 8 PCMA/8000/1, 9 G722/8000/1 (16 kHz audio),
/// 18 G729/8000/1.
/// RFC 3551's 10 L16/44100/2 and 11 L16/44100/1 are left out (issue #16 finding 4: a stray
/// datagram with PT 10 would otherwise open a 44.1 kHz stereo source nobody asked for); a
/// `--payload 10=L16/44100/2` or an SDP that lists them turns them on.
class PayloadMap {
 public:
  PayloadMap();
  /// Every RFC 3551 static audio type rtpnode decodes: the above plus 10 and 11. For SDP, where
  /// an m= line that lists them without a=rtpmap means them.
  static PayloadMap rfc3551();
  /// Sets or replaces the format of `pt` (0..127). Thread: setup only.
  void set(std::uint8_t pt, const PayloadFormat& f) { table_[pt & 0x7f] = f; }
  /// The format of `pt`, or nullptr when unknown. Thread: any (read-only after setup).
  [[nodiscard]] const PayloadFormat* find(std::uint8_t pt) const noexcept {
    const auto& e = table_[pt & 0x7f];
    return e ? &*e : nullptr;
  }
  /// Parses and applies "PT=CODEC/CLOCK[/CHANNELS]"; false with `error` set on bad input.
  bool apply(std::string_view spec, std::string& error);

 private:
  std::array<std::optional<PayloadFormat>, 128> table_{};
};

}  // namespace rtpnode
