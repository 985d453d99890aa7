#include "rtp/payload_format.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <vector>

namespace rtpnode {

std::string_view to_string(Codec c) noexcept {
  switch (c) {
    case Codec::pcmu:
      return "pcmu";
    case Codec::pcma:
      return "pcma";
    case Codec::g722:
      return "g722";
    case Codec::g729:
      return "g729";
    case Codec::amr_nb:
      return "amr";
    case Codec::l16:
      return "l16";
    case Codec::l24:
      return "l24";
    case Codec::opus:
      return "opus";
    case Codec::raw_s16le:
      return "s16le";
    case Codec::raw_s16be:
      return "s16be";
    case Codec::raw_s24le:
      return "s24le";
    case Codec::raw_f32le:
      return "f32le";
    case Codec::telephone_event:
      return "telephone-event";
  }
  return "unknown";
}

std::size_t PayloadFormat::max_payload_bytes(std::uint32_t max_ptime_ms) const noexcept {
  if (red) {
    // RFC 2198: the primary and up to two redundant blocks of the same codec (4-byte headers
    // for the redundant ones, 1 byte for the primary's); a packet with more is refused as too
    // large, counted as malformed.
    PayloadFormat block = *this;
    block.red = false;
    return 3 * block.max_payload_bytes(max_ptime_ms) + 2 * 4 + 1;
  }
  const std::size_t frames = std::size_t{audio_rate} * max_ptime_ms / 1000;
  switch (codec) {
    case Codec::pcmu:
    case Codec::pcma:
      return frames * channels;
    case Codec::g722:
      return frames / 2 * channels;  // 64 kbit/s: 4 bits per 16 kHz sample
    case Codec::g729:
      return frames / 8 + 2;  // RFC 3551 §4.5.6: 10 bytes per 80 samples, then one 2-byte SID
    case Codec::amr_nb:
      return frames / 160 * 32 + 1;  // RFC 4867 §4.4: CMR, then a ToC byte + <= 31 per frame
    case Codec::l16:
    case Codec::l24:
    case Codec::raw_s16le:
    case Codec::raw_s16be:
    case Codec::raw_s24le:
    case Codec::raw_f32le:
      return frames * channels * pcm_sample_bytes(codec);
    case Codec::opus:
      return 1275 * 6 + 7;  // RFC 6716 §3.2.1/§3.2.5 code-3 bound
    case Codec::telephone_event:
      return 4 * 16;  // RFC 4733 §2.5.1.5: a few 4-byte events per packet
  }
  return 1500;
}

std::string PayloadFormat::describe() const {
  const std::uint32_t rate = codec == Codec::g722 ? 8000 : audio_rate;
  const std::uint32_t nominal_clock = codec == Codec::g722 ? 8000 : audio_rate;
  std::string d =
      std::string(to_string(codec)) + "/" + std::to_string(rate) + "/" + std::to_string(channels);
  if (clock_rate != nominal_clock) d += "/ts=" + std::to_string(clock_rate);
  if (octet_aligned) d += "/octet-align";
  if (red) d += "/red=" + std::to_string(red_block_pt);
  return d;
}

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (;;) {
    const auto pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return parts;
}

template <typename T>
bool parse_uint(std::string_view s, T& v) {
  const auto* end = s.data() + s.size();
  auto r = std::from_chars(s.data(), end, v);
  return r.ec == std::errc{} && r.ptr == end && !s.empty();
}

std::string lower(std::string_view s) {
  std::string r(s);
  std::transform(r.begin(), r.end(), r.begin(), [](unsigned char c) { return std::tolower(c); });
  return r;
}

}  // namespace

std::optional<PayloadFormat> parse_payload_format(std::string_view spec, std::string& error) {
  auto parts = split(spec, '/');
  // A trailing "red=BLOCK_PT": RFC 2198 redundant audio carrying this codec.
  std::optional<std::uint8_t> red_block_pt;
  if (parts.size() >= 3 && lower(parts.back()).rfind("red=", 0) == 0) {
    unsigned pt = 0;
    if (!parse_uint(parts.back().substr(4), pt) || pt > 127) {
      error = "bad RFC 2198 block payload type '" + std::string(parts.back()) + "' (red=0..127)";
      return std::nullopt;
    }
    red_block_pt = static_cast<std::uint8_t>(pt);
    parts.pop_back();
  }
  // AMR's "/octet-align" (RFC 4867 §8.1 fmtp octet-align=1).
  bool octet_aligned = false;
  if (parts.size() >= 3 &&
      (lower(parts.back()) == "octet-align" || lower(parts.back()) == "octet-align=1")) {
    octet_aligned = true;
    parts.pop_back();
  }
  // A trailing "ts=RATE": the sender's RTP clock, when it breaks its codec's rule (trx-tx).
  std::optional<std::uint32_t> ts_rate;
  if (parts.size() >= 3 && lower(parts.back()).rfind("ts=", 0) == 0) {
    std::uint32_t r = 0;
    if (!parse_uint(parts.back().substr(3), r) || r < 1000 || r > 384000) {
      error = "bad RTP clock override '" + std::string(parts.back()) + "' (ts=1000..384000)";
      return std::nullopt;
    }
    ts_rate = r;
    parts.pop_back();
  }
  if (parts.size() < 2 || parts.size() > 3) {
    error = "expected CODEC/CLOCK_RATE[/CHANNELS][/ts=RTP_CLOCK][/red=BLOCK_PT], got '" +
            std::string(spec) + "'";
    return std::nullopt;
  }
  PayloadFormat f;
  const std::string name = lower(parts[0]);
  if (name == "pcmu")
    f.codec = Codec::pcmu;
  else if (name == "pcma")
    f.codec = Codec::pcma;
  else if (name == "g722")
    f.codec = Codec::g722;
  else if (name == "g729")
    f.codec = Codec::g729;
  else if (name == "amr")
    f.codec = Codec::amr_nb;
  else if (name == "l16")
    f.codec = Codec::l16;
  else if (name == "l24")
    f.codec = Codec::l24;
  else if (name == "opus")
    f.codec = Codec::opus;
  else if (name == "telephone-event")
    f.codec = Codec::telephone_event;
  else {
    error = "unknown codec '" + std::string(parts[0]) +
            "' (use pcmu, pcma, g722, g729, amr, l16, l24, opus or telephone-event)";
    return std::nullopt;
  }
  if (!parse_uint(parts[1], f.clock_rate) || f.clock_rate < 1000 || f.clock_rate > 384000) {
    error = "bad clock rate '" + std::string(parts[1]) + "' (1000..384000 Hz)";
    return std::nullopt;
  }
  f.channels = 1;
  if (parts.size() == 3 &&
      (!parse_uint(parts[2], f.channels) || f.channels < 1 || f.channels > 64)) {
    error = "bad channel count '" + std::string(parts[2]) + "' (1..64)";
    return std::nullopt;
  }
  f.audio_rate = f.clock_rate;
  switch (f.codec) {
    case Codec::pcmu:
    case Codec::pcma:
      if (f.clock_rate != 8000) {
        error = "G.711 uses an 8000 Hz clock (RFC 3551 §4.5.14)";
        return std::nullopt;
      }
      break;
    case Codec::g722:
      if (f.clock_rate != 8000) {
        error = "G.722 uses an 8000 Hz RTP clock (RFC 3551 §4.5.2)";
        return std::nullopt;
      }
      f.audio_rate = 16000;
      break;
    case Codec::g729:
      if (f.clock_rate != 8000 || f.channels != 1) {
        error = "G.729 is 8000 Hz, 1 channel (RFC 3551 §4.5.6)";
        return std::nullopt;
      }
      break;
    case Codec::amr_nb:
      if (f.clock_rate != 8000 || f.channels != 1) {
        error = "AMR-NB is 8000 Hz, 1 channel here (RFC 4867 §8.1)";
        return std::nullopt;
      }
      break;
    case Codec::opus:
      if (f.clock_rate != 48000) {
        error = "Opus uses a 48000 Hz RTP clock (RFC 7587 §4.1)";
        return std::nullopt;
      }
      if (f.channels > 2) {
        error = "Opus over RTP carries 1 or 2 channels (RFC 7587)";
        return std::nullopt;
      }
      break;
    default:
      break;
  }
  if (octet_aligned) {
    if (f.codec != Codec::amr_nb) {
      error = "octet-align is an AMR parameter (RFC 4867)";
      return std::nullopt;
    }
    f.octet_aligned = true;
  }
  if (red_block_pt) {
    if (f.codec == Codec::telephone_event) {
      error = "telephone-event in RFC 2198 redundancy is not decoded";
      return std::nullopt;
    }
    f.red = true;
    f.red_block_pt = *red_block_pt;
  }
  if (ts_rate) {
    if (f.codec == Codec::telephone_event) {
      error = "telephone-event has no audio to override the RTP clock of";
      return std::nullopt;
    }
    // The codec still decodes at its audio rate; RTP timestamps count `ts_rate` ticks a second.
    f.clock_rate = *ts_rate;
  }
  return f;
}

std::optional<PayloadFormat> parse_raw_format(std::string_view spec, std::string& error) {
  const auto parts = split(spec, '/');
  PayloadFormat f;
  const std::string name = parts.empty() ? std::string() : lower(parts[0]);
  if (name == "s16le")
    f.codec = Codec::raw_s16le;
  else if (name == "s16be")
    f.codec = Codec::raw_s16be;
  else if (name == "s24le")
    f.codec = Codec::raw_s24le;
  else if (name == "f32le")
    f.codec = Codec::raw_f32le;
  if (parts.size() != 3 || !is_raw(f.codec)) {
    error = "expected FORMAT/RATE/CHANNELS with FORMAT s16le, s16be, s24le or f32le, got '" +
            std::string(spec) + "'";
    return std::nullopt;
  }
  if (!parse_uint(parts[1], f.clock_rate) || f.clock_rate < 1000 || f.clock_rate > 384000) {
    error = "bad rate '" + std::string(parts[1]) + "' (1000..384000 Hz)";
    return std::nullopt;
  }
  if (!parse_uint(parts[2], f.channels) || f.channels < 1 || f.channels > 64) {
    error = "bad channel count '" + std::string(parts[2]) + "' (1..64)";
    return std::nullopt;
  }
  f.audio_rate = f.clock_rate;
  return f;
}

PayloadMap::PayloadMap() {
  table_[0] = PayloadFormat{Codec::pcmu, 8000, 8000, 1};
  table_[8] = PayloadFormat{Codec::pcma, 8000, 8000, 1};
  table_[9] = PayloadFormat{Codec::g722, 8000, 16000, 1};
  table_[18] = PayloadFormat{Codec::g729, 8000, 8000, 1};
}

PayloadMap PayloadMap::rfc3551() {
  PayloadMap m;
  m.set(10, PayloadFormat{Codec::l16, 44100, 44100, 2});
  m.set(11, PayloadFormat{Codec::l16, 44100, 44100, 1});
  return m;
}

bool PayloadMap::apply(std::string_view spec, std::string& error) {
  const auto eq = spec.find('=');
  unsigned pt = 0;
  if (eq == std::string_view::npos || !parse_uint(spec.substr(0, eq), pt) || pt > 127) {
    error =
        "expected PT=CODEC/CLOCK_RATE[/CHANNELS] with PT 0..127, got '" + std::string(spec) + "'";
    return false;
  }
  const auto f = parse_payload_format(spec.substr(eq + 1), error);
  if (!f) return false;
  set(static_cast<std::uint8_t>(pt), *f);
  return true;
}

}  // namespace rtpnode
