#include "node/e_model.hpp"

#include <algorithm>
#include <cmath>

namespace rtpnode {

CodecImpairment codec_impairment(const PayloadFormat& f) {
  switch (f.codec) {
    case Codec::pcmu:
    case Codec::pcma:
      return {0.0, 25.1, "G.113 App. I: G.711 with PLC"};
    case Codec::g729:
      return {11.0, 19.0, "G.113 App. I: G.729A with VAD"};
    default:
      return {0.0, 25.1, "assumed as G.711 with PLC (no narrowband G.113 entry)"};
  }
}

EModelResult e_model(const CodecImpairment& codec, double loss_percent, double burst_ratio,
                     double one_way_delay_ms) {
  EModelResult out;
  const double ppl = std::clamp(loss_percent, 0.0, 100.0);
  const double burst = std::max(1.0, burst_ratio);
  // G.107 (7-29): Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl).
  out.ie_eff = codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst + codec.bpl);
  // G.107 (7-27)/(7-28): Idd = 0 for Ta <= 100 ms, else with X = log10(Ta/100) / log10(2):
  // 25 * ((1 + X^6)^(1/6) - 3 * (1 + (X/3)^6)^(1/6) + 2).
  if (one_way_delay_ms > 100.0) {
    const double x = std::log10(one_way_delay_ms / 100.0) / std::log10(2.0);
    out.id = 25.0 * (std::pow(1.0 + std::pow(x, 6), 1.0 / 6) -
                     3.0 * std::pow(1.0 + std::pow(x / 3.0, 6), 1.0 / 6) + 2.0);
  }
  out.r = std::clamp(93.2 - out.id - out.ie_eff, 0.0, 100.0);
  // G.107 (B-4).
  const double r = out.r;
  out.mos = r <= 0 ? 1.0 : r >= 100 ? 4.5 : 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6;
  return out;
}

}  // namespace rtpnode
