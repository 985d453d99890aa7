// Audio payload decoders and encoders: G.711 µ-law/A-law (ITU-T G.711, via spandsp, with
// spandsp's G.711 Appendix I style PLC), G.722 at 64 kbit/s (ITU-T G.722, via spandsp),
// G.729/G.729A with Annex B (RFC 3551 §4.5.6, via bcg729, with its concealment and comfort noise),
// AMR-NB (RFC 4867, both packings, via opencore-amrnb, with its concealment and comfort noise),
// L16 (RFC 3551 §4.5.11: big-endian signed 16-bit), L24 (RFC 3190 §4: big-endian signed 24-bit),
// headerless s16le PCM, and Opus (RFC 6716, RFC 7587, via libopus, with its PLC); any of them
// inside RFC 2198 redundant audio (PayloadFormat::red), whose redundancy rebuilds lost packets.
//
// Thread: a decoder/encoder belongs to one thread at a time (the loop thread in rtpnode).
// decode()/conceal() never allocate: scratch space is allocated by the factory.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "rtp/payload_format.hpp"

namespace rtpnode {

/// Largest packet duration any decoder accepts, in milliseconds (Opus' maximum, RFC 6716 §3.2.5).
inline constexpr int kMaxPtimeMs = 120;

class Decoder {
 public:
  explicit Decoder(const PayloadFormat& f) : format_(f) {}
  virtual ~Decoder() = default;
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  [[nodiscard]] const PayloadFormat& format() const noexcept { return format_; }

  /// Decodes one payload into `out` as interleaved float samples in [-1, 1), `format().channels`
  /// per frame, at `format().audio_rate`. Returns the frames written, or -1 when the payload is
  /// corrupt, has a partial frame, or does not fit in `out` (nothing to play; count and drop).
  [[nodiscard]] virtual int decode(std::span<const std::uint8_t> payload,
                                   std::span<float> out) noexcept = 0;

  /// Synthesises `frames` frames of concealment for missing audio into `out` (which must hold
  /// frames * channels samples). Returns the frames written (== frames). The default writes
  /// silence; codecs with a PLC extrapolate from the last decoded audio.
  virtual int conceal(int frames, std::span<float> out) noexcept;

  /// Fills `frames` frames of a sender's silence: a timestamp gap without loss, where the sender
  /// sent nothing (discontinuous transmission). Codecs with a DTX mode fill it their way (Opus,
  /// RFC 7587 §3.3; G.729 Annex B comfort noise after a SID frame) and return `frames`; the
  /// default returns -1 and the caller plays RFC 3389 comfort noise or silence.
  [[nodiscard]] virtual int fill_silence(int frames, std::span<float> out) noexcept {
    (void)frames;
    (void)out;
    return -1;
  }

  /// Whether the last payload decoded said the sender went silent (G.729 Annex B: it ended
  /// with a SID frame): missing audio after it is most likely not sent, not lost.
  [[nodiscard]] virtual bool in_dtx() const noexcept { return false; }

  /// Rebuilds `frames` missing frames that end where packet `next` begins from the redundancy
  /// `next` carries (Opus in-band FEC, RFC 6716 §2.1.7: LBRR data in SILK/hybrid frames,
  /// `frames` a multiple of 2.5 ms; RFC 2198: a redundant block whose timestamp offset is
  /// exactly `frames`). Returns `frames`, or -1 when `next` has no usable
  /// redundancy (the caller conceals instead). The default has none.
  [[nodiscard]] virtual int decode_fec(std::span<const std::uint8_t> next, int frames,
                                       std::span<float> out) noexcept {
    (void)next;
    (void)frames;
    (void)out;
    return -1;
  }

  /// Rebuilds `frames` missing frames that start `ticks_back` RTP ticks before packet `later`
  /// begins, from a redundant block `later` carries at exactly that timestamp offset (RFC 2198
  /// §3; any distance). Returns `frames`, or -1 when `later` has none for that span. The
  /// default has none (Opus LBRR only covers the packet right before: decode_fec).
  [[nodiscard]] virtual int decode_redundant(std::span<const std::uint8_t> later,
                                             std::int64_t ticks_back, int frames,
                                             std::span<float> out) noexcept {
    (void)later;
    (void)ticks_back;
    (void)frames;
    (void)out;
    return -1;
  }

  /// Whether `payload` carries redundancy for the packet before it (Opus LBRR, RFC 2198).
  [[nodiscard]] virtual bool carries_fec(std::span<const std::uint8_t> payload) const noexcept {
    (void)payload;
    return false;
  }

  /// Frames the payload decodes to, without decoding it; -1 when unknown or corrupt.
  [[nodiscard]] virtual int frames_in(std::span<const std::uint8_t> payload) const noexcept = 0;

 private:
  PayloadFormat format_;
};

/// Creates the decoder for `f`. Throws std::runtime_error when the codec library fails to
/// initialise (out of memory, unsupported rate).
std::unique_ptr<Decoder> make_decoder(const PayloadFormat& f);

class Encoder {
 public:
  explicit Encoder(const PayloadFormat& f) : format_(f) {}
  virtual ~Encoder() = default;
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  [[nodiscard]] const PayloadFormat& format() const noexcept { return format_; }

  /// Encodes `frames` frames of interleaved 16-bit PCM (`format().channels` per frame, at
  /// `format().audio_rate`) into `out`. Returns the payload size in bytes, or -1 on error.
  /// Opus accepts 2.5, 5, 10, 20, 40 or 60 ms per call.
  [[nodiscard]] virtual int encode(std::span<const std::int16_t> pcm, int frames,
                                   std::span<std::uint8_t> out) noexcept = 0;

 private:
  PayloadFormat format_;
};

/// Options for encoders that have them (Opus, G.729).
struct EncoderOptions {
  int opus_bitrate_bps = 0;  ///< 0 = libopus default for the channel count
  int opus_complexity = 10;  ///< 0..10
  bool opus_fec = false;  ///< in-band FEC (LBRR; only in SILK and hybrid frames, RFC 6716 §2.1.7)
  int opus_expected_loss = 0;  ///< percent 0..100: how much redundancy the FEC carries
  bool opus_dtx = false;       ///< discontinuous transmission: 1-2 byte frames during silence
  bool g729_annex_b = false;   ///< G.729 Annex B and AMR DTX: VAD, SID frames, untransmitted
                               ///< frames
};

/// Creates the encoder for `f`. Throws std::runtime_error on failure.
std::unique_ptr<Encoder> make_encoder(const PayloadFormat& f, const EncoderOptions& opt = {});

}  // namespace rtpnode
