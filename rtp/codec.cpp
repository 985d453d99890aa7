#include "rtp/codec.hpp"

#include "rtp/redundancy.hpp"

#include <opus/opus.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

extern "C" {
#include <bcg729/decoder.h>  // its headers have no extern "C" of their own
#include <bcg729/encoder.h>
#include <opencore-amrnb/interf_dec.h>
#include <opencore-amrnb/interf_enc.h>
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#include <spandsp/g722.h>
#include <spandsp/plc.h>
}

namespace rtpnode {

namespace {

constexpr float kS16ToFloat = 1.0f / 32768.0f;
constexpr float kS24ToFloat = 1.0f / 8388608.0f;

void s16_to_float(const std::int16_t* in, std::size_t n, float* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]) * kS16ToFloat;
}

std::size_t max_frames(const PayloadFormat& f) {
  return std::size_t{f.audio_rate} * kMaxPtimeMs / 1000;
}

// ---- G.711 ---------------------------------------------------------------------------------
class G711Decoder final : public Decoder {
 public:
  explicit G711Decoder(const PayloadFormat& f) : Decoder(f), pcm_(max_frames(f) * f.channels) {
    // spandsp's expansion of each of the 256 codes, once: decoding is then a table lookup per
    // sample (g711_decode computes it per sample: 15 instructions, 12 % of an offline render of
    // 100 calls).
    for (int code = 0; code < 256; ++code)
      table_[static_cast<std::size_t>(code)] =
          f.codec == Codec::pcmu ? ulaw_to_linear(static_cast<std::uint8_t>(code))
                                 : alaw_to_linear(static_cast<std::uint8_t>(code));
    // spandsp's PLC models 8 kHz mono speech (pitch search over 8 kHz samples).
    if (f.channels == 1) plc_ = plc_init(nullptr);
  }
  ~G711Decoder() override {
    if (plc_) plc_free(plc_);
  }
  int decode(std::span<const std::uint8_t> p, std::span<float> out) noexcept override {
    const std::size_t ch = format().channels;
    if (p.size() % ch != 0 || p.size() > pcm_.size() || p.size() > out.size()) return -1;
    const int n = static_cast<int>(p.size());
    for (std::size_t i = 0; i < p.size(); ++i) pcm_[i] = table_[p[i]];
    if (plc_) {
      plc_rx(plc_, pcm_.data(), n);  // may smooth the start of pcm_ after a fill-in
      remember(pcm_.data(), n);
      filling_ = false;
    }
    s16_to_float(pcm_.data(), static_cast<std::size_t>(n), out.data());
    return n / static_cast<int>(ch);
  }
  int conceal(int frames, std::span<float> out) noexcept override {
    if (!plc_ || static_cast<std::size_t>(frames) > pcm_.size())
      return Decoder::conceal(frames, out);
    if (!filling_) {
      // spandsp 0.0.6's plc_fillin starts a gap with normalise_history(), whose memcpy of the
      // circular history overlaps itself whenever its write position is below half the buffer
      // (160-sample packets: most of the time): undefined behaviour, an ASan abort. Handing
      // plc_rx() the whole history, oldest first, leaves the history identical and its write
      // position 0, where normalise_history() does nothing (issue #16 finding 5). Upstream's
      // current plc.c moves that part with vec_movei16 (a memmove); Debian 12 ships 0.0.6.
      const auto pos = static_cast<std::ptrdiff_t>(history_pos_);
      std::copy(history_.begin() + pos, history_.end(), linear_.begin());
      std::copy(history_.begin(), history_.begin() + pos, linear_.end() - pos);
      plc_rx(plc_, linear_.data(), PLC_HISTORY_LEN);
    }
    plc_fillin(plc_, pcm_.data(), frames);
    remember(pcm_.data(), frames);
    filling_ = true;
    s16_to_float(pcm_.data(), static_cast<std::size_t>(frames), out.data());
    return frames;
  }
  int frames_in(std::span<const std::uint8_t> p) const noexcept override {
    return static_cast<int>(p.size() / format().channels);
  }

 private:
  /// Appends to our copy of the PLC's history: the last PLC_HISTORY_LEN samples it was given.
  void remember(const std::int16_t* s, int n) noexcept {
    if (n >= PLC_HISTORY_LEN) {
      std::copy_n(s + n - PLC_HISTORY_LEN, PLC_HISTORY_LEN, history_.begin());
      history_pos_ = 0;
      return;
    }
    // Two copies around the circle's end.
    const auto first =
        std::min<std::size_t>(static_cast<std::size_t>(n), history_.size() - history_pos_);
    std::copy_n(s, first, history_.begin() + static_cast<std::ptrdiff_t>(history_pos_));
    std::copy_n(s + first, static_cast<std::size_t>(n) - first, history_.begin());
    history_pos_ = (history_pos_ + static_cast<std::size_t>(n)) % history_.size();
  }

  std::array<std::int16_t, 256> table_{};  ///< spandsp's linear value of each code
  plc_state_t* plc_ = nullptr;
  std::vector<std::int16_t> pcm_;
  std::array<std::int16_t, PLC_HISTORY_LEN> history_{};  ///< circular, oldest at history_pos_
  std::array<std::int16_t, PLC_HISTORY_LEN> linear_{};   ///< history_ unrolled for plc_rx
  std::size_t history_pos_ = 0;
  bool filling_ = false;  ///< the last call was conceal(): the PLC is inside a gap
};

// ---- Waveform-repetition PLC (L16, raw PCM, G.722) -------------------------------------------
// For codecs without a library PLC at their rate: repeat the last pitch period of the decoded
// audio, fading linearly to silence over kFadeMs (in the manner of ITU-T G.711 Appendix I, which
// spandsp implements for 8 kHz mono only). The period is the lag in [2.5 ms, 15 ms] with the
// highest normalised autocorrelation over the last 20 ms (channels summed; searched on every
// `step`th sample above 16 kHz to bound the cost).
class RepetitionPlc {
 public:
  static constexpr int kFadeMs = 60;
  RepetitionPlc(int rate, int channels)
      : rate_(rate),
        ch_(channels),
        hist_frames_(rate * 35 / 1000),
        hist_(static_cast<std::size_t>(hist_frames_ * channels), 0.0f) {}
  /// Records decoded audio (interleaved); ends any concealment run.
  void record(const float* x, int frames) noexcept {
    const int keep = std::min(frames, hist_frames_);
    const auto shift = static_cast<std::size_t>((hist_frames_ - keep) * ch_);
    std::move(hist_.begin() + static_cast<std::ptrdiff_t>(keep * ch_), hist_.end(), hist_.begin());
    std::copy_n(x + static_cast<std::size_t>((frames - keep) * ch_),
                static_cast<std::size_t>(keep * ch_),
                hist_.begin() + static_cast<std::ptrdiff_t>(shift));
    concealed_ = 0;
    have_audio_ = true;
  }
  void conceal(int frames, float* out) noexcept {
    if (concealed_ == 0) period_ = have_audio_ ? find_period() : 0;
    const int fade = rate_ * kFadeMs / 1000;
    for (int i = 0; i < frames; ++i, ++concealed_) {
      const float gain = period_ > 0 && concealed_ < fade
                             ? 1.0f - static_cast<float>(concealed_) / static_cast<float>(fade)
                             : 0.0f;
      const int src = gain > 0 ? hist_frames_ - period_ + concealed_ % period_ : 0;
      for (int c = 0; c < ch_; ++c)
        out[i * ch_ + c] = gain * hist_[static_cast<std::size_t>(src * ch_ + c)];
    }
  }

 private:
  int find_period() const noexcept {
    const int window = rate_ / 50, min_lag = rate_ / 400, max_lag = rate_ * 15 / 1000;
    const int step = std::max(1, rate_ / 16000);
    auto mono = [&](int k) {
      float v = 0;
      for (int c = 0; c < ch_; ++c) v += hist_[static_cast<std::size_t>(k * ch_ + c)];
      return v;
    };
    double best = -1;
    int best_lag = max_lag;
    for (int lag = min_lag; lag <= max_lag; lag += step) {
      double xy = 0, yy = 0;
      for (int k = hist_frames_ - window; k < hist_frames_; k += step) {
        const float x = mono(k), y = mono(k - lag);
        xy += x * y;
        yy += y * y;
      }
      const double score = yy > 0 ? xy / std::sqrt(yy) : 0;
      if (score > best) {
        best = score;
        best_lag = lag;
      }
    }
    return best_lag;
  }
  int rate_, ch_, hist_frames_;
  std::vector<float> hist_;
  int period_ = 0;
  int concealed_ = 0;
  bool have_audio_ = false;
};

// ---- G.722 ---------------------------------------------------------------------------------
class G722Decoder final : public Decoder {
 public:
  explicit G722Decoder(const PayloadFormat& f) : Decoder(f), pcm_(max_frames(f)) {
    if (f.channels != 1) throw std::runtime_error("G.722 decoding supports 1 channel");
    dec_ = g722_decode_init(nullptr, 64000, 0);
    if (!dec_) throw std::runtime_error("spandsp g722_decode_init failed");
  }
  ~G722Decoder() override { g722_decode_free(dec_); }
  int decode(std::span<const std::uint8_t> p, std::span<float> out) noexcept override {
    // 64 kbit/s: one octet carries two 16 kHz samples.
    if (p.size() * 2 > pcm_.size() || p.size() * 2 > out.size()) return -1;
    const int n = g722_decode(dec_, pcm_.data(), p.data(), static_cast<int>(p.size()));
    s16_to_float(pcm_.data(), static_cast<std::size_t>(n), out.data());
    plc_.record(out.data(), n);
    return n;
  }
  int conceal(int frames, std::span<float> out) noexcept override {
    if (static_cast<std::size_t>(frames) > out.size()) return Decoder::conceal(frames, out);
    plc_.conceal(frames, out.data());
    return frames;
  }
  int frames_in(std::span<const std::uint8_t> p) const noexcept override {
    return static_cast<int>(p.size() * 2);
  }

 private:
  g722_decode_state_t* dec_ = nullptr;
  std::vector<std::int16_t> pcm_;
  RepetitionPlc plc_{16000, 1};
};

// ---- Whole-frame concealment --------------------------------------------------------------
/// Concealment for codecs that conceal whole frames of N samples (G.729: 80, AMR: 160): a gap
/// that is not a whole number of frames keeps the rest of its last frame for the next call, so
/// a gap concealed in pieces is the same audio as one concealed at once. Real audio decoded in
/// between drops the rest (clear()). No allocation.
template <int N>
class FrameCarry {
 public:
  /// Writes `frames` samples to `out`, calling `make(int16_t* pcm)` for each new frame.
  template <typename MakeFrame>
  void take(int frames, float* out, MakeFrame make) noexcept {
    for (int done = 0; done < frames;) {
      if (len_ == 0) {
        make(pcm_.data());
        pos_ = 0;
        len_ = N;
      }
      const int n = std::min(frames - done, len_);
      s16_to_float(pcm_.data() + pos_, static_cast<std::size_t>(n), out + done);
      pos_ += n;
      len_ -= n;
      done += n;
    }
  }
  void clear() noexcept { len_ = 0; }

 private:
  std::array<std::int16_t, N> pcm_{};
  int pos_ = 0, len_ = 0;  ///< pcm_[pos_, pos_ + len_) not played yet
};

// ---- G.729 / G.729A with Annex B -------------------------------------------------------------
// RFC 3551 §4.5.6: a payload is zero or more 10-byte frames (10 ms, 80 samples each) followed by
// at most one 2-byte Annex B SID frame. bcg729 decodes both (a G.729A decoder, interoperable with
// G.729) and, for an erased frame, conceals (G.729 §4.4) or, after a SID, goes on generating
// comfort noise (Annex B.27).
constexpr int kG729Frame = 80;          // samples per 10 ms frame
constexpr std::size_t kG729Bytes = 10;  // bytes per frame
constexpr std::size_t kG729SidBytes = 2;

class G729Decoder final : public Decoder {
 public:
  explicit G729Decoder(const PayloadFormat& f) : Decoder(f), max_frames_(max_frames(f)) {
    if (f.channels != 1) throw std::runtime_error("G.729 decoding supports 1 channel");
    dec_ = initBcg729DecoderChannel();
    if (!dec_) throw std::runtime_error("bcg729 initBcg729DecoderChannel failed");
  }
  ~G729Decoder() override { closeBcg729DecoderChannel(dec_); }
  int decode(std::span<const std::uint8_t> p, std::span<float> out) noexcept override {
    const int frames = frames_in(p);
    if (frames <= 0 || static_cast<std::size_t>(frames) > max_frames_ ||
        static_cast<std::size_t>(frames) > out.size())
      return -1;
    carry_.clear();  // concealment left over from a gap is not played after real audio
    const std::uint8_t* bits = p.data();
    int done = 0;
    std::size_t at = 0;
    for (; at + kG729Bytes <= p.size(); at += kG729Bytes, done += kG729Frame) {
      bcg729Decoder(dec_, bits + at, kG729Bytes, 0, 0, 0, pcm_.data());
      s16_to_float(pcm_.data(), kG729Frame, out.data() + done);
    }
    sid_ = at < p.size();
    if (sid_) {
      bcg729Decoder(dec_, bits + at, kG729SidBytes, 0, 1, 0, pcm_.data());
      s16_to_float(pcm_.data(), kG729Frame, out.data() + done);
    }
    return frames;
  }
  /// Erased frames: G.729's own concealment after speech, Annex B comfort noise after a SID,
  /// a frame at a time (FrameCarry).
  int conceal(int frames, std::span<float> out) noexcept override {
    if (static_cast<std::size_t>(frames) > out.size()) return Decoder::conceal(frames, out);
    carry_.take(frames, out.data(),
                [this](std::int16_t* pcm) { bcg729Decoder(dec_, nullptr, 0, 1, 0, 0, pcm); });
    return frames;
  }
  /// A sender's silence after a SID frame is Annex B's: comfort noise at the SID's level and
  /// spectrum. Without a SID, none (the caller plays RFC 3389 noise or silence).
  int fill_silence(int frames, std::span<float> out) noexcept override {
    return sid_ ? conceal(frames, out) : -1;
  }
  bool in_dtx() const noexcept override { return sid_; }
  int frames_in(std::span<const std::uint8_t> p) const noexcept override {
    const std::size_t rest = p.size() % kG729Bytes;
    if (p.empty() || (rest != 0 && rest != kG729SidBytes)) return -1;
    return static_cast<int>(p.size() / kG729Bytes + (rest != 0 ? 1 : 0)) * kG729Frame;
  }

 private:
  bcg729DecoderChannelContextStruct* dec_ = nullptr;
  std::size_t max_frames_;
  std::array<std::int16_t, kG729Frame> pcm_{};
  FrameCarry<kG729Frame> carry_;
  bool sid_ = false;  ///< the last payload ended with a SID frame
};

// ---- AMR-NB (RFC 4867) ------------------------------------------------------------------------
// A payload is a 4-bit CMR, a table of contents (one entry per 20 ms frame: F = more entries
// follow, FT = frame type, Q = frame quality) and the frames' speech bits, in the order of 3GPP
// TS 26.101: packed without gaps in the bandwidth-efficient mode (§4.4), each field and frame
// padded to a byte in the octet-aligned mode (§4.4, octet-align=1). opencore-amrnb decodes the
// file storage format (§5.3: a ToC byte, then the frame's bits padded to a byte), so each frame
// is repacked into it. A frame marked damaged (Q = 0), or of a type opencore cannot decode
// (other systems' SIDs, FT 9-11), is decoded as NO_DATA: the decoder conceals it, or goes on
// with comfort noise after a SID (FT 8).
constexpr int kAmrFrame = 160;  // 20 ms at 8 kHz
constexpr int kAmrNoData = 15;
/// Speech bits per frame type (RFC 4867 Table 1; 3GPP TS 26.101), -1 for reserved types.
constexpr int kAmrBits[16] = {95, 103, 118, 134, 148, 159, 204, 244, 39, 43, 38, 37, -1, -1, -1, 0};
constexpr std::size_t kAmrMaxFrames = kMaxPtimeMs / 20;

struct AmrFrame {
  int ft = kAmrNoData;
  bool q = true;
  std::size_t bit = 0;  ///< where its speech bits start in the payload
};

/// The frames of an AMR payload, or 0 when it is malformed (a reserved frame type, more
/// entries than kAmrMaxFrames, or fewer bits than its table of contents needs).
std::size_t parse_amr(std::span<const std::uint8_t> p, bool octet_aligned,
                      std::array<AmrFrame, kAmrMaxFrames>& frames) noexcept {
  const std::size_t bits = p.size() * 8;
  auto bit_at = [&](std::size_t i) { return (p[i / 8] >> (7 - i % 8)) & 1u; };
  auto field = [&](std::size_t at, int n) {
    unsigned v = 0;
    for (int k = 0; k < n; ++k) v = v << 1 | bit_at(at + static_cast<std::size_t>(k));
    return v;
  };
  std::size_t at = octet_aligned ? 8 : 4;  // past the CMR
  const std::size_t entry = octet_aligned ? 8 : 6;
  std::size_t n = 0;
  for (bool more = true; more;) {
    if (n == kAmrMaxFrames || at + entry > bits) return 0;
    more = bit_at(at) != 0;
    frames[n].ft = static_cast<int>(field(at + 1, 4));
    frames[n].q = bit_at(at + 5) != 0;
    if (kAmrBits[frames[n].ft] < 0) return 0;
    at += entry;
    ++n;
  }
  for (std::size_t k = 0; k < n; ++k) {
    frames[k].bit = at;
    const auto len = static_cast<std::size_t>(kAmrBits[frames[k].ft]);
    at += octet_aligned ? (len + 7) / 8 * 8 : len;
  }
  return at <= bits ? n : 0;
}

class AmrNbDecoder final : public Decoder {
 public:
  explicit AmrNbDecoder(const PayloadFormat& f) : Decoder(f) {
    if (f.channels != 1) throw std::runtime_error("AMR-NB decoding supports 1 channel");
    dec_ = Decoder_Interface_init();
    if (!dec_) throw std::runtime_error("opencore-amrnb Decoder_Interface_init failed");
  }
  ~AmrNbDecoder() override { Decoder_Interface_exit(dec_); }
  int decode(std::span<const std::uint8_t> p, std::span<float> out) noexcept override {
    std::array<AmrFrame, kAmrMaxFrames> frames;
    const std::size_t n = parse_amr(p, format().octet_aligned, frames);
    if (n == 0 || n * kAmrFrame > out.size()) return -1;
    carry_.clear();
    for (std::size_t k = 0; k < n; ++k) {
      const AmrFrame& fr = frames[k];
      const bool usable = fr.q && fr.ft <= 8;
      std::array<std::uint8_t, 32> storage{};  // ToC byte + at most 244 bits
      storage[0] = static_cast<std::uint8_t>((usable ? fr.ft : kAmrNoData) << 3 | 0x04);
      if (usable) {
        for (int b = 0; b < kAmrBits[fr.ft]; ++b) {
          const std::size_t i = fr.bit + static_cast<std::size_t>(b);
          if ((p[i / 8] >> (7 - i % 8)) & 1u)
            storage[1 + static_cast<std::size_t>(b) / 8] |=
                static_cast<std::uint8_t>(0x80u >> (b % 8));
        }
      }
      Decoder_Interface_Decode(dec_, storage.data(), pcm_.data(), 0);
      s16_to_float(pcm_.data(), kAmrFrame, out.data() + k * kAmrFrame);
      sid_ = fr.ft == 8 || (sid_ && fr.ft == kAmrNoData);
    }
    return static_cast<int>(n) * kAmrFrame;
  }
  /// Lost frames: NO_DATA to the decoder, which conceals them (3GPP TS 26.091) or, after a SID,
  /// goes on with comfort noise (TS 26.092). A remainder of a frame is kept for the next call.
  int conceal(int frames, std::span<float> out) noexcept override {
    if (static_cast<std::size_t>(frames) > out.size()) return Decoder::conceal(frames, out);
    carry_.take(frames, out.data(), [this](std::int16_t* pcm) {
      const std::uint8_t no_data = kAmrNoData << 3 | 0x04;
      Decoder_Interface_Decode(dec_, &no_data, pcm, 0);
    });
    return frames;
  }
  int fill_silence(int frames, std::span<float> out) noexcept override {
    return sid_ ? conceal(frames, out) : -1;
  }
  bool in_dtx() const noexcept override { return sid_; }
  int frames_in(std::span<const std::uint8_t> p) const noexcept override {
    std::array<AmrFrame, kAmrMaxFrames> frames;
    const std::size_t n = parse_amr(p, format().octet_aligned, frames);
    return n == 0 ? -1 : static_cast<int>(n) * kAmrFrame;
  }

 private:
  void* dec_ = nullptr;
  std::array<std::int16_t, kAmrFrame> pcm_{};
  FrameCarry<kAmrFrame> carry_;
  bool sid_ = false;  ///< the sender is in DTX: its last frame was a SID (or NO_DATA after one)
};

// ---- L16 / L24 / raw PCM ------------------------------------------------------------------
// L16: RFC 3551 §4.5.11, big-endian signed 16-bit; L24: RFC 3190 §4, big-endian signed 24-bit;
// raw (headerless): s16le, s16be, s24le (3 bytes, little-endian) and f32le (IEEE 754 binary32,
// little-endian, full scale +-1; NaN and infinities play as silence, magnitudes past 16 as 16).
// Samples interleaved, one per channel per frame.
class PcmDecoder final : public Decoder {
 public:
  explicit PcmDecoder(const PayloadFormat& f)
      : Decoder(f),
        bytes_(pcm_sample_bytes(f.codec)),
        plc_(static_cast<int>(f.audio_rate), static_cast<int>(f.channels)) {}
  int decode(std::span<const std::uint8_t> p, std::span<float> out) noexcept override {
    const std::size_t ch = format().channels;
    if (p.size() % (bytes_ * ch) != 0 || p.size() / bytes_ > out.size()) return -1;
    const std::size_t n = p.size() / bytes_;
    const std::uint8_t* b = p.data();
    switch (format().codec) {
      case Codec::l24:
        for (std::size_t i = 0; i < n; ++i, b += 3) {
          // Sign-extend through the top of a 32-bit word: exact in float (24-bit mantissa).
          const auto v = static_cast<std::int32_t>(
              std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[2]} << 8);
          out[i] = static_cast<float>(v >> 8) * kS24ToFloat;
        }
        break;
      case Codec::l16:
      case Codec::raw_s16be:
        for (std::size_t i = 0; i < n; ++i, b += 2)
          out[i] = static_cast<float>(static_cast<std::int16_t>(b[0] << 8 | b[1])) * kS16ToFloat;
        break;
      case Codec::raw_s24le:
        for (std::size_t i = 0; i < n; ++i, b += 3) {
          const auto v = static_cast<std::int32_t>(
              std::uint32_t{b[2]} << 24 | std::uint32_t{b[1]} << 16 | std::uint32_t{b[0]} << 8);
          out[i] = static_cast<float>(v >> 8) * kS24ToFloat;
        }
        break;
      case Codec::raw_f32le:
        for (std::size_t i = 0; i < n; ++i, b += 4) {
          const std::uint32_t bits = std::uint32_t{b[0]} | std::uint32_t{b[1]} << 8 |
                                     std::uint32_t{b[2]} << 16 | std::uint32_t{b[3]} << 24;
          float v = 0;
          std::memcpy(&v, &bits, sizeof v);
          // Far beyond full scale is garbage: held to +-16 so that no sum downstream overflows
          // (the mixer's clip counts what still exceeds +-1).
          out[i] = std::isfinite(v) ? std::clamp(v, -16.0f, 16.0f) : 0.0f;
        }
        break;
      default:  // s16le
        for (std::size_t i = 0; i < n; ++i, b += 2)
          out[i] = static_cast<float>(static_cast<std::int16_t>(b[1] << 8 | b[0])) * kS16ToFloat;
        break;
    }
    plc_.record(out.data(), static_cast<int>(n / ch));
    return static_cast<int>(n / ch);
  }
  int conceal(int frames, std::span<float> out) noexcept override {
    if (static_cast<std::size_t>(frames) * format().channels > out.size())
      return Decoder::conceal(frames, out);
    plc_.conceal(frames, out.data());
    return frames;
  }
  int frames_in(std::span<const std::uint8_t> p) const noexcept override {
    return static_cast<int>(p.size() / (bytes_ * format().channels));
  }

 private:
  std::size_t bytes_;  ///< per sample: 2, 3 or 4
  RepetitionPlc plc_;
};

// ---- Opus ----------------------------------------------------------------------------------
class OpusDecoderImpl final : public Decoder {
 public:
  explicit OpusDecoderImpl(const PayloadFormat& f) : Decoder(f) {
    int err = 0;
    dec_ = opus_decoder_create(48000, f.channels, &err);
    if (err != OPUS_OK || !dec_)
      throw std::runtime_error(std::string("opus_decoder_create: ") + opus_strerror(err));
  }
  ~OpusDecoderImpl() override { opus_decoder_destroy(dec_); }
  int decode(std::span<const std::uint8_t> p, std::span<float> out) noexcept override {
    if (p.empty()) return -1;
    const int cap = static_cast<int>(out.size() / format().channels);
    const int n =
        opus_decode_float(dec_, p.data(), static_cast<opus_int32>(p.size()), out.data(), cap, 0);
    return n < 0 ? -1 : n;
  }
  int conceal(int frames, std::span<float> out) noexcept override {
    // libopus PLC wants the exact missing duration in multiples of 2.5 ms (120 frames at 48 kHz),
    // at most 120 ms per call; a remainder below 2.5 ms is filled with silence.
    const std::size_t ch = format().channels;
    int done = 0;
    while (frames - done >= 120) {
      const int chunk = std::min((frames - done) / 120 * 120, 5760);
      const int n = opus_decode_float(dec_, nullptr, 0, out.data() + done * ch, chunk, 0);
      if (n <= 0) break;
      done += n;
    }
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(done * ch),
              out.begin() + static_cast<std::ptrdiff_t>(frames * ch), 0.0f);
    return frames;
  }
  /// RFC 7587 §3.3 DTX: the decoder's own fill of the frames that were not sent.
  int fill_silence(int frames, std::span<float> out) noexcept override {
    return conceal(frames, out);
  }
  int frames_in(std::span<const std::uint8_t> p) const noexcept override {
    if (p.empty()) return -1;
    const int n = opus_packet_get_nb_samples(p.data(), static_cast<opus_int32>(p.size()), 48000);
    return n < 0 ? -1 : n;
  }
  int decode_fec(std::span<const std::uint8_t> next, int frames,
                 std::span<float> out) noexcept override {
    if (frames <= 0 || frames % 120 != 0 || frames > 5760 ||
        static_cast<std::size_t>(frames) * format().channels > out.size() || !carries_fec(next))
      return -1;
    // libopus conceals the part of `frames` the redundancy does not cover, then decodes it.
    const int n = opus_decode_float(dec_, next.data(), static_cast<opus_int32>(next.size()),
                                    out.data(), frames, 1);
    return n == frames ? n : -1;
  }

  /// Whether the first Opus frame of `p` carries LBRR (in-band FEC) data. RFC 6716 §4.2.3-4.2.4:
  /// a SILK or hybrid frame opens with, per channel (mid, then side), one VAD flag per 20 ms SILK
  /// frame and one LBRR flag; they are equiprobable range-coded bits decoded first, so they are
  /// the most significant bits of the frame's first byte. CELT-only frames carry no LBRR.
  bool carries_fec(std::span<const std::uint8_t> p) const noexcept override {
    if (p.empty()) return false;
    const int config = p[0] >> 3;
    if (config >= 16) return false;  // CELT-only
    const unsigned char* frames[48];
    opus_int16 sizes[48];
    const int count = opus_packet_parse(p.data(), static_cast<opus_int32>(p.size()), nullptr,
                                        frames, sizes, nullptr);
    if (count <= 0 || sizes[0] <= 0) return false;
    const int ms10 = config < 12 ? (config % 4 == 0 ? 1 : (config % 4) * 2)
                                 : (config % 2 == 0 ? 1 : 2);  // 10 ms units
    const int silk_frames = ms10 <= 2 ? 1 : ms10 / 2;
    const unsigned b = frames[0][0];
    bool lbrr = (b >> (7 - silk_frames)) & 1u;
    if (opus_packet_get_nb_channels(p.data()) == 2)
      lbrr = lbrr || ((b >> (6 - 2 * silk_frames)) & 1u);
    return lbrr;
  }

 private:
  OpusDecoder* dec_ = nullptr;
};

// ---- RFC 2198 redundant audio ----------------------------------------------------------------
// Wraps the decoder of the blocks' codec: a payload's primary block decodes as the packet's
// audio; a lost packet is rebuilt from a redundant block of a later packet whose timestamp
// offset puts it exactly at the lost span (decode_fec: the packet right after it;
// decode_redundant: any later one). Blocks of another payload type are skipped.
class RedDecoder final : public Decoder {
 public:
  RedDecoder(const PayloadFormat& f, std::unique_ptr<Decoder> blocks)
      : Decoder(f), blocks_(std::move(blocks)) {}
  int decode(std::span<const std::uint8_t> p, std::span<float> out) noexcept override {
    const auto red = parse_red(p);
    if (!red || red->primary.pt != format().red_block_pt) return -1;
    return blocks_->decode(red->primary.data, out);
  }
  int conceal(int frames, std::span<float> out) noexcept override {
    return blocks_->conceal(frames, out);
  }
  int fill_silence(int frames, std::span<float> out) noexcept override {
    return blocks_->fill_silence(frames, out);
  }
  bool in_dtx() const noexcept override { return blocks_->in_dtx(); }
  int decode_fec(std::span<const std::uint8_t> next, int frames,
                 std::span<float> out) noexcept override {
    // The lost span in RTP ticks (G.722: 2 frames a tick).
    const std::int64_t span = std::int64_t{frames} * format().clock_rate;
    if (frames <= 0 || span % format().audio_rate != 0) return -1;
    if (decode_redundant(next, span / format().audio_rate, frames, out) == frames) return frames;
    // No redundant block for the span: the codec's own in-band FEC in the primary (Opus LBRR).
    const auto red = parse_red(next);
    if (!red || red->primary.pt != format().red_block_pt) return -1;
    return blocks_->decode_fec(red->primary.data, frames, out);
  }
  int decode_redundant(std::span<const std::uint8_t> later, std::int64_t ticks_back, int frames,
                       std::span<float> out) noexcept override {
    const auto red = parse_red(later);
    if (!red || ticks_back <= 0) return -1;
    for (std::size_t i = 0; i < red->redundant_count; ++i) {
      const RedBlock& b = red->redundant[i];
      if (b.pt == format().red_block_pt && b.ts_offset == ticks_back &&
          blocks_->frames_in(b.data) == frames)
        return blocks_->decode(b.data, out);
    }
    return -1;
  }
  bool carries_fec(std::span<const std::uint8_t> p) const noexcept override {
    const auto red = parse_red(p);
    if (!red) return false;
    for (std::size_t i = 0; i < red->redundant_count; ++i)
      if (red->redundant[i].pt == format().red_block_pt && red->redundant[i].ts_offset > 0)
        return true;
    return red->primary.pt == format().red_block_pt && blocks_->carries_fec(red->primary.data);
  }
  int frames_in(std::span<const std::uint8_t> p) const noexcept override {
    const auto red = parse_red(p);
    if (!red || red->primary.pt != format().red_block_pt) return -1;
    return blocks_->frames_in(red->primary.data);
  }

 private:
  std::unique_ptr<Decoder> blocks_;
};

// ---- Encoders ------------------------------------------------------------------------------
class G711Encoder final : public Encoder {
 public:
  explicit G711Encoder(const PayloadFormat& f) : Encoder(f) {
    g711_ = g711_init(nullptr, f.codec == Codec::pcmu ? G711_ULAW : G711_ALAW);
    if (!g711_) throw std::runtime_error("spandsp g711_init failed");
  }
  ~G711Encoder() override { g711_free(g711_); }
  int encode(std::span<const std::int16_t> pcm, int frames,
             std::span<std::uint8_t> out) noexcept override {
    const std::size_t n = static_cast<std::size_t>(frames) * format().channels;
    if (n > pcm.size() || n > out.size()) return -1;
    return g711_encode(g711_, out.data(), pcm.data(), static_cast<int>(n));
  }

 private:
  g711_state_t* g711_ = nullptr;
};

class G722Encoder final : public Encoder {
 public:
  explicit G722Encoder(const PayloadFormat& f) : Encoder(f) {
    if (f.channels != 1) throw std::runtime_error("G.722 encoding supports 1 channel");
    enc_ = g722_encode_init(nullptr, 64000, 0);
    if (!enc_) throw std::runtime_error("spandsp g722_encode_init failed");
  }
  ~G722Encoder() override { g722_encode_free(enc_); }
  int encode(std::span<const std::int16_t> pcm, int frames,
             std::span<std::uint8_t> out) noexcept override {
    if (static_cast<std::size_t>(frames) > pcm.size() ||
        static_cast<std::size_t>(frames) / 2 > out.size() || frames % 2 != 0)
      return -1;
    return g722_encode(enc_, out.data(), pcm.data(), frames);
  }

 private:
  g722_encode_state_t* enc_ = nullptr;
};

class G729Encoder final : public Encoder {
 public:
  G729Encoder(const PayloadFormat& f, bool annex_b) : Encoder(f) {
    if (f.channels != 1) throw std::runtime_error("G.729 encoding supports 1 channel");
    enc_ = initBcg729EncoderChannel(annex_b ? 1 : 0);
    if (!enc_) throw std::runtime_error("bcg729 initBcg729EncoderChannel failed");
  }
  ~G729Encoder() override { closeBcg729EncoderChannel(enc_); }
  /// `frames` a multiple of 80. With Annex B the encoder may end the payload with a 2-byte SID
  /// frame or leave frames out (untransmitted): the payload is then shorter, or empty.
  int encode(std::span<const std::int16_t> pcm, int frames,
             std::span<std::uint8_t> out) noexcept override {
    if (frames <= 0 || frames % kG729Frame != 0 || static_cast<std::size_t>(frames) > pcm.size() ||
        static_cast<std::size_t>(frames / kG729Frame) * kG729Bytes > out.size())
      return -1;
    std::size_t len = 0;
    for (int k = 0; k < frames; k += kG729Frame) {
      std::uint8_t n = 0;
      bcg729Encoder(enc_, pcm.data() + k, out.data() + len, &n);
      len += n;
      if (n == kG729SidBytes) break;  // RFC 3551 §4.5.6: a SID frame ends the payload
    }
    return static_cast<int>(len);
  }

 private:
  bcg729EncoderChannelContextStruct* enc_ = nullptr;
};

/// AMR-NB at 12.2 kbit/s (mode MR122), packed as RFC 4867 §4.4 says for the format's mode
/// (bandwidth-efficient, or octet-aligned), CMR 15 (no request), one ToC entry per 20 ms frame.
/// With DTX, SID frames go out as FT 8 and untransmitted frames as NO_DATA; a packet of NO_DATA
/// only is not sent (its size is 0).
class AmrNbEncoder final : public Encoder {
 public:
  AmrNbEncoder(const PayloadFormat& f, bool dtx) : Encoder(f) {
    if (f.channels != 1) throw std::runtime_error("AMR-NB encoding supports 1 channel");
    enc_ = Encoder_Interface_init(dtx ? 1 : 0);
    if (!enc_) throw std::runtime_error("opencore-amrnb Encoder_Interface_init failed");
  }
  ~AmrNbEncoder() override { Encoder_Interface_exit(enc_); }
  int encode(std::span<const std::int16_t> pcm, int frames,
             std::span<std::uint8_t> out) noexcept override {
    const int n = frames / kAmrFrame;
    if (frames <= 0 || frames % kAmrFrame != 0 || static_cast<std::size_t>(n) > kAmrMaxFrames ||
        static_cast<std::size_t>(frames) > pcm.size() ||
        out.size() < static_cast<std::size_t>(n) * 32 + 1)
      return -1;
    std::array<std::array<std::uint8_t, 64>, kAmrMaxFrames> storage{};
    bool any = false;
    for (int k = 0; k < n; ++k) {
      (void)Encoder_Interface_Encode(enc_, MR122, pcm.data() + k * kAmrFrame,
                                     storage[static_cast<std::size_t>(k)].data(), 0);
      any = any || (storage[static_cast<std::size_t>(k)][0] >> 3 & 0x0f) != kAmrNoData;
    }
    if (!any) return 0;
    std::fill(out.begin(), out.begin() + n * 32 + 1, std::uint8_t{0});
    std::size_t at = 0;  // bit position
    auto put = [&](unsigned v, int bits) {
      for (int b = bits - 1; b >= 0; --b, ++at)
        if ((v >> b) & 1u) out[at / 8] |= static_cast<std::uint8_t>(0x80u >> (at % 8));
    };
    const bool octet = format().octet_aligned;
    put(15, 4);  // CMR: no mode request
    if (octet) put(0, 4);
    for (int k = 0; k < n; ++k) {
      const unsigned ft = storage[static_cast<std::size_t>(k)][0] >> 3 & 0x0f;
      put(k + 1 < n ? 1 : 0, 1);
      put(ft, 4);
      put(1, 1);  // Q: good
      if (octet) put(0, 2);
    }
    for (int k = 0; k < n; ++k) {
      const auto& st = storage[static_cast<std::size_t>(k)];
      const int ft = st[0] >> 3 & 0x0f;
      for (int b = 0; b < kAmrBits[ft]; ++b)
        put(st[1 + static_cast<std::size_t>(b) / 8] >> (7 - b % 8) & 1u, 1);
      if (octet) at = (at + 7) / 8 * 8;
    }
    return static_cast<int>((at + 7) / 8);
  }

 private:
  void* enc_ = nullptr;
};

class PcmEncoder final : public Encoder {
 public:
  explicit PcmEncoder(const PayloadFormat& f) : Encoder(f) {}
  /// 24-bit formats carry each 16-bit sample in their top 16 bits (the low byte 0) and f32le
  /// as sample / 32768: exact, from 16-bit sources.
  int encode(std::span<const std::int16_t> pcm, int frames,
             std::span<std::uint8_t> out) noexcept override {
    const std::size_t n = static_cast<std::size_t>(frames) * format().channels;
    const std::size_t bytes = pcm_sample_bytes(format().codec);
    if (n > pcm.size() || bytes * n > out.size()) return -1;
    std::uint8_t* o = out.data();
    for (std::size_t i = 0; i < n; ++i, o += bytes) {
      const auto v = static_cast<std::uint16_t>(pcm[i]);
      const auto hi = static_cast<std::uint8_t>(v >> 8), lo = static_cast<std::uint8_t>(v);
      switch (format().codec) {
        case Codec::l16:
        case Codec::raw_s16be:
          o[0] = hi, o[1] = lo;
          break;
        case Codec::l24:
          o[0] = hi, o[1] = lo, o[2] = 0;
          break;
        case Codec::raw_s24le:
          o[0] = 0, o[1] = lo, o[2] = hi;
          break;
        case Codec::raw_f32le: {
          const float f = static_cast<float>(pcm[i]) * kS16ToFloat;
          std::uint32_t bits = 0;
          std::memcpy(&bits, &f, sizeof bits);
          for (int k = 0; k < 4; ++k) o[k] = static_cast<std::uint8_t>(bits >> (8 * k));
          break;
        }
        default:  // s16le
          o[0] = lo, o[1] = hi;
          break;
      }
    }
    return static_cast<int>(bytes * n);
  }
};

class OpusEncoderImpl final : public Encoder {
 public:
  OpusEncoderImpl(const PayloadFormat& f, const EncoderOptions& o) : Encoder(f) {
    int err = 0;
    enc_ = opus_encoder_create(48000, f.channels, OPUS_APPLICATION_AUDIO, &err);
    if (err != OPUS_OK || !enc_)
      throw std::runtime_error(std::string("opus_encoder_create: ") + opus_strerror(err));
    if (o.opus_bitrate_bps > 0) opus_encoder_ctl(enc_, OPUS_SET_BITRATE(o.opus_bitrate_bps));
    opus_encoder_ctl(enc_, OPUS_SET_COMPLEXITY(o.opus_complexity));
    opus_encoder_ctl(enc_, OPUS_SET_INBAND_FEC(o.opus_fec ? 1 : 0));
    opus_encoder_ctl(enc_, OPUS_SET_PACKET_LOSS_PERC(o.opus_expected_loss));
    opus_encoder_ctl(enc_, OPUS_SET_DTX(o.opus_dtx ? 1 : 0));
  }
  ~OpusEncoderImpl() override { opus_encoder_destroy(enc_); }
  int encode(std::span<const std::int16_t> pcm, int frames,
             std::span<std::uint8_t> out) noexcept override {
    if (static_cast<std::size_t>(frames) * format().channels > pcm.size()) return -1;
    const int n =
        opus_encode(enc_, pcm.data(), frames, out.data(), static_cast<opus_int32>(out.size()));
    return n < 0 ? -1 : n;
  }

 private:
  OpusEncoder* enc_ = nullptr;
};

}  // namespace

int Decoder::conceal(int frames, std::span<float> out) noexcept {
  const std::size_t n = std::min(out.size(), static_cast<std::size_t>(frames) * format_.channels);
  std::fill_n(out.begin(), n, 0.0f);
  return frames;
}

std::unique_ptr<Decoder> make_decoder(const PayloadFormat& f) {
  if (f.red) {
    PayloadFormat blocks = f;
    blocks.red = false;
    return std::make_unique<RedDecoder>(f, make_decoder(blocks));
  }
  switch (f.codec) {
    case Codec::pcmu:
    case Codec::pcma:
      return std::make_unique<G711Decoder>(f);
    case Codec::g722:
      return std::make_unique<G722Decoder>(f);
    case Codec::g729:
      return std::make_unique<G729Decoder>(f);
    case Codec::amr_nb:
      return std::make_unique<AmrNbDecoder>(f);
    case Codec::l16:
    case Codec::l24:
    case Codec::raw_s16le:
    case Codec::raw_s16be:
    case Codec::raw_s24le:
    case Codec::raw_f32le:
      return std::make_unique<PcmDecoder>(f);
    case Codec::opus:
      return std::make_unique<OpusDecoderImpl>(f);
    case Codec::telephone_event:
      break;
  }
  throw std::runtime_error("no decoder for codec " + std::string(to_string(f.codec)));
}

std::unique_ptr<Encoder> make_encoder(const PayloadFormat& f, const EncoderOptions& opt) {
  switch (f.codec) {
    case Codec::pcmu:
    case Codec::pcma:
      return std::make_unique<G711Encoder>(f);
    case Codec::g722:
      return std::make_unique<G722Encoder>(f);
    case Codec::g729:
      return std::make_unique<G729Encoder>(f, opt.g729_annex_b);
    case Codec::amr_nb:
      return std::make_unique<AmrNbEncoder>(f, opt.g729_annex_b);
    case Codec::l16:
    case Codec::l24:
    case Codec::raw_s16le:
    case Codec::raw_s16be:
    case Codec::raw_s24le:
    case Codec::raw_f32le:
      return std::make_unique<PcmEncoder>(f);
    case Codec::opus:
      return std::make_unique<OpusEncoderImpl>(f, opt);
    case Codec::telephone_event:
      break;
  }
  throw std::runtime_error("no encoder for codec " + std::string(to_string(f.codec)));
}

}  // namespace rtpnode
