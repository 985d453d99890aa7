// libFuzzer target: every payload decoder with concealment, Opus FEC and RFC 2198 redundancy. The
// first byte picks the format; the rest is a sequence of payloads, each [length:1][op:1][bytes], op
// choosing decode, conceal (or fill a sender's silence), FEC recovery or frames_in.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "rtp/codec.hpp"
#include "rtp/payload_format.hpp"

namespace {

using rtpnode::Codec;
using rtpnode::PayloadFormat;

const PayloadFormat kFormats[] = {
    {Codec::pcmu, 8000, 8000, 1},
    {Codec::pcma, 8000, 8000, 1},
    {Codec::pcmu, 8000, 8000, 2},
    {Codec::g722, 8000, 16000, 1},
    {Codec::l16, 48000, 48000, 2},
    {Codec::l16, 44100, 44100, 1},
    {Codec::l16, 8000, 8000, 8},
    {Codec::l24, 48000, 48000, 2},
    {Codec::opus, 48000, 48000, 2},
    {Codec::opus, 48000, 48000, 1},
    {Codec::raw_s16le, 8000, 8000, 1},
    {Codec::raw_s16be, 48000, 48000, 2},
    {Codec::raw_s24le, 96000, 96000, 12},
    {Codec::raw_f32le, 48000, 48000, 2},
    {Codec::l24, 48000, 48000, 64},
    {Codec::g729, 8000, 8000, 1},
    {Codec::amr_nb, 8000, 8000, 1},
    {Codec::amr_nb, 8000, 8000, 1, true},
    // RFC 2198 redundant audio around G.711, G.722 and Opus (appended: seeds keep their index).
    {Codec::pcmu, 8000, 8000, 1, false, true, 0},
    {Codec::g722, 8000, 16000, 1, false, true, 9},
    {Codec::opus, 48000, 48000, 2, false, true, 111},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  constexpr std::size_t kCount = sizeof kFormats / sizeof kFormats[0];
  static std::unique_ptr<rtpnode::Decoder> decoders[kCount];
  const std::size_t which = data[0] % kCount;
  const PayloadFormat& f = kFormats[which];
  // A fresh decoder per input keeps runs reproducible (PLC and Opus state start clean).
  decoders[which] = rtpnode::make_decoder(f);
  rtpnode::Decoder& dec = *decoders[which];
  // One output buffer for every input (the 64-channel format needs 1.4 MB: allocating and
  // zeroing it per input took most of the time).
  static std::vector<float> buffer;
  const std::size_t need = static_cast<std::size_t>(f.audio_rate) * 120 / 1000 * f.channels;
  if (buffer.size() < need) buffer.resize(need);
  const std::span<float> out(buffer.data(), need);
  std::size_t pos = 1;
  while (pos + 2 <= size) {
    const std::size_t len = data[pos];
    const std::uint8_t op = data[pos + 1];
    pos += 2;
    const std::span<const std::uint8_t> payload(data + pos, std::min(len, size - pos));
    pos += payload.size();
    switch (op % 4) {
      case 0:
        (void)dec.decode(payload, out);
        break;
      case 1: {
        const int frames =
            static_cast<int>(f.audio_rate / 400) * (1 + op / 4 % 8);  // 2.5 ms steps, <= 20 ms
        if (op & 0x80)
          (void)dec.fill_silence(frames, out);  // a sender's silence (DTX, G.729 SID)
        else
          (void)dec.conceal(frames, out);
        break;
      }
      case 2: {
        const int frames = static_cast<int>(f.audio_rate / 400) * (1 + op / 4 % 8);
        if (dec.carries_fec(payload)) (void)dec.decode_fec(payload, frames, out);
        break;
      }
      default:
        (void)dec.frames_in(payload);
        break;
    }
  }
  return 0;
}
