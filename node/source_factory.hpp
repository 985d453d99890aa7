// How a new stream becomes a Source (issue #13): its parameters from the configuration (payload
// format, playout, resampler quality; --offset, --route and --gain by their selectors,
// NodeConfig::settings_for), the device (rate, channels, render lead, ramp length), the mixer
// and the NTP timeline, and a Sender Report held for its SSRC before it was admitted (taken only
// when it came from the RTP sender's host). The SourceTable calls it; Node and the pipeline tests
// use the same one.
//
// Thread: loop only.
#pragma once

#include <cstdint>
#include <memory>

#include "node/config.hpp"
#include "node/device_clock.hpp"
#include "node/mixer.hpp"
#include "node/rtcp_session.hpp"
#include "node/source.hpp"
#include "node/source_table.hpp"
#include "node/sync_timeline.hpp"
#include "node/wall_clock.hpp"

namespace rtpnode {

struct SourceFactory {
  const NodeConfig* cfg = nullptr;
  Mixer* mixer = nullptr;
  const DeviceClock* clock = nullptr;
  RtcpSession* rtcp = nullptr;
  SyncTimeline* timeline = nullptr;  ///< used when cfg->sync_rtcp, for RTP sources
  double device_rate = 48000;
  int device_channels = 2;
  frames_t lead_frames = 0;  ///< render lead, device frames
  frames_t ramp_frames = 0;  ///< the mixer's ramp length
  std::uint32_t next_id = 1;
  WallClock* wall = nullptr;  ///< the node's wall clock (capture_to_dac_ms); null: read directly

  /// Throws what Source's constructor throws (a codec or resampler that cannot be made).
  std::unique_ptr<Source> operator()(const SourceTable::NewSource& n);
};

}  // namespace rtpnode
