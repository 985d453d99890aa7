// The E-model (ITU-T G.107) as rtpnode's --report applies it: G.107's defaults, G.113
// impairments, the delay term and the R-to-MOS mapping, on values worked out by hand here.
#include <gtest/gtest.h>

#include <cmath>

#include "node/e_model.hpp"

namespace rtpnode {
namespace {

TEST(EModel, DefaultsGiveR932AndItsMos) {
  const auto q = e_model(codec_impairment({Codec::pcmu, 8000, 8000, 1}), 0, 1, 50);
  EXPECT_DOUBLE_EQ(q.r, 93.2);
  EXPECT_DOUBLE_EQ(q.ie_eff, 0.0);
  EXPECT_DOUBLE_EQ(q.id, 0.0);  // Ta <= 100 ms: no delay impairment
  // G.107 (B-4): 1 + 0.035 R + R (R - 60)(100 - R) 7e-6.
  EXPECT_NEAR(q.mos, 1 + 0.035 * 93.2 + 93.2 * 33.2 * 6.8 * 7e-6, 1e-12);
  EXPECT_NEAR(q.mos, 4.41, 0.005);
}

TEST(EModel, LossImpairsG711AsG113Says) {
  // Ie,eff = 0 + 95 * 2 / (2 / 1 + 25.1) = 7.011...; bursty loss (BurstR 2) impairs more.
  const CodecImpairment g711 = codec_impairment({Codec::pcma, 8000, 8000, 1});
  EXPECT_EQ(g711.source, "G.113 App. I: G.711 with PLC");
  const auto random = e_model(g711, 2, 1, 0);
  EXPECT_NEAR(random.ie_eff, 95.0 * 2 / 27.1, 1e-9);
  EXPECT_NEAR(random.r, 93.2 - 95.0 * 2 / 27.1, 1e-9);
  const auto bursty = e_model(g711, 2, 2, 0);
  EXPECT_NEAR(bursty.ie_eff, 95.0 * 2 / 26.1, 1e-9);
  EXPECT_LT(bursty.mos, random.mos);
  // Total loss alone leaves R = 93.2 - 95 * 100 / 125.1; with a one-second delay R would be
  // negative: it clamps at 0, MOS at 1.
  EXPECT_NEAR(e_model(g711, 100, 1, 0).r, 93.2 - 9500.0 / 125.1, 1e-9);
  const auto worst = e_model(g711, 100, 1, 1000);
  EXPECT_DOUBLE_EQ(worst.r, 0.0);
  EXPECT_DOUBLE_EQ(worst.mos, 1.0);
  EXPECT_NE(codec_impairment({Codec::opus, 48000, 48000, 2}).source.find("assumed"),
            std::string::npos);
}

TEST(EModel, DelayTermFollowsG107) {
  const CodecImpairment g711 = codec_impairment({Codec::pcmu, 8000, 8000, 1});
  // Ta = 200 ms: X = 1, Idd = 25 ((1 + 1)^(1/6) - 3 (1 + 3^-6)^(1/6) + 2).
  const double idd200 =
      25 * (std::pow(2.0, 1.0 / 6) - 3 * std::pow(1 + std::pow(1.0 / 3, 6), 1.0 / 6) + 2);
  EXPECT_NEAR(e_model(g711, 0, 1, 200).id, idd200, 1e-9);
  EXPECT_NEAR(idd200, 3.04, 0.01);
  EXPECT_DOUBLE_EQ(e_model(g711, 0, 1, 100).id, 0.0);
  double last = 0;
  for (double ta : {150.0, 200.0, 300.0, 400.0, 600.0}) {
    const double id = e_model(g711, 0, 1, ta).id;
    EXPECT_GT(id, last) << ta;
    last = id;
  }
}

}  // namespace
}  // namespace rtpnode
