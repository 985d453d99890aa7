// The E-model (ITU-T G.107, 06/2015) for one direction of a call: a transmission rating R
// from the codec's equipment impairment under packet loss (G.107 §7.2, values of ITU-T G.113
// Appendix I) and the one-way delay (G.107 §7.4, Idd), every other parameter at G.107's
// default (Table 3: Ro - Is = 93.2 with A = 0; Idte and Idle negligible at the default TELR of
// 65 dB and WEPL of 110 dB), and the MOS-CQE that R maps to (G.107 Annex B, B-4).
//
// What a tap cannot know is taken as follows, and the report says so: the one-way delay is
// the delay the receiver adds (packetization + jitter-buffer playout delay), the network's is
// unknown; the loss is random (BurstR = 1) unless a burst ratio is given.
#pragma once

#include <string>

#include "rtp/payload_format.hpp"

namespace rtpnode {

/// A codec's equipment impairment and its robustness to loss (G.113 Appendix I, Table I.3).
struct CodecImpairment {
  double ie = 0;       ///< equipment impairment factor without loss
  double bpl = 25.1;   ///< packet-loss robustness factor (with PLC)
  std::string source;  ///< where the values come from ("G.113 App. I: G.711 with PLC", ...)
};
/// The impairment of `f`'s codec. G.711 (A/µ-law) with PLC: Ie 0, Bpl 25.1. G.729 (bcg729 is
/// G.729A; Annex B VAD): Ie 11, Bpl 19.0 (G.113 Appendix I, Tables I.1 and I.3). G.722, L16 and
/// Opus have no narrowband G.113 entry: taken as G.711's (the narrowband scale cannot credit their
/// bandwidth), source says "assumed". Any thread; pure.
CodecImpairment codec_impairment(const PayloadFormat& f);

struct EModelResult {
  double r = 0;       ///< transmission rating R, 0..100 (clamped)
  double mos = 1;     ///< MOS-CQE, 1..4.5
  double ie_eff = 0;  ///< effective equipment impairment under the loss
  double id = 0;      ///< delay impairment Idd
};
/// R and MOS for `loss_percent` (0..100: lost and discarded-late packets over expected),
/// `burst_ratio` (>= 1; 1 = random loss) and `one_way_delay_ms` (Ta = T). Any thread; pure.
EModelResult e_model(const CodecImpairment& codec, double loss_percent, double burst_ratio,
                     double one_way_delay_ms);

}  // namespace rtpnode
