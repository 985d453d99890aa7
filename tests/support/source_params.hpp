// Source::Params for tests: one source of `format` on a 48 kHz device feeding `mixer` (5 ms
// ramps) on `timeline` (null: none), rendered `lead_frames` ahead; playout at rtpnode's defaults
// (adaptive, drift compensation) unless the test changes them.
#pragma once

#include <cstdint>

#include "node/source.hpp"

namespace rtpnode::test {

inline Source::Params source_params(std::uint32_t id, std::uint32_t ssrc, PayloadFormat format,
                                    std::uint8_t payload_type, Mixer* mixer, SyncTimeline* timeline,
                                    frames_t lead_frames = 256) {
  Source::Params p;
  p.id = id;
  p.ssrc = ssrc;
  p.payload_type = payload_type;
  p.format = format;
  p.device_rate = 48000;
  p.lead_frames = lead_frames;
  p.mixer = mixer;
  p.ramp_frames = 240;
  p.timeline = timeline;
  return p;
}

}  // namespace rtpnode::test
