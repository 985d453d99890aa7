#include "node/source_factory.hpp"

#include <cmath>
#include <cstring>

#include "node/net_address.hpp"

namespace rtpnode {

std::unique_ptr<Source> SourceFactory::operator()(const SourceTable::NewSource& n) {
  Source::Params p;
  p.id = next_id++;
  p.ssrc = n.ssrc;
  p.port = n.port;
  p.remote = address_text(n.from);
  std::memcpy(&p.remote_addr, n.from, sockaddr_length(n.from));
  p.payload_type = n.payload_type;
  p.format = *n.format;
  p.raw = n.raw;
  p.raw_backlog_ns = cfg->max_latency.count();
  p.device_rate = device_rate;
  p.lead_frames = lead_frames;
  p.playout = cfg->playout();
  p.resampler_quality = cfg->resampler_quality;
  p.resampler_bypass = cfg->resampler_bypass;
  // Music to a device only: a file or a call recording keeps every frame of the stream's start,
  // and speech keeps the 60 ms start (robust to the jitter of the first seconds; its 1 % trims
  // are what NetEq does to speech too).
  p.trim_start = cfg->music && cfg->output.empty() && cfg->record.empty();
  const SourceSettings set = cfg->settings_for(n.port, n.ssrc, !n.raw);
  p.mixer = mixer;
  p.ramp_frames = ramp_frames;
  p.timeline = cfg->sync_rtcp && !n.raw ? timeline : nullptr;
  p.wall = wall;
  if (cfg->sync_absolute && !n.raw) p.timeline_delay_ns = cfg->playout_delay.count();
  if (n.listen != nullptr && !n.raw) p.media_clock = n.listen->media_clock;
  p.offset_frames =
      ns_to_frames(set.offset.count(), static_cast<std::int64_t>(std::llround(device_rate)));
  p.route = set.route;
  if (!p.route && n.listen != nullptr && n.listen->route) p.route = n.listen->route;
  if (n.listen != nullptr) p.session = n.listen->session;
  p.device_channels = device_channels;
  p.gain_db = set.gain_db;
  auto s = std::make_unique<Source>(p, n.first_arrival, *clock);
  if (const HeldSenderReport* sr = rtcp->held(n.key)) {
    if (same_host(reinterpret_cast<const sockaddr*>(&sr->from), n.from))
      s->on_sender_report(sr->ntp_ns, sr->rtp_ts);
    else
      rtcp->forget(n.key);  // held from another host than the RTP: not this sender's
  }
  return s;
}

}  // namespace rtpnode
