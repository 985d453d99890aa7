#include "node/source_rings.hpp"

#include <cmath>

namespace rtpnode {

SourceRings::SourceRings(Settings s, frames_t start_frame)
    : s_(std::move(s)),
      current_(std::make_unique<PlayoutStream>(s_.id, s_.channels, s_.ring_frames, start_frame)),
      gain_db_(s_.gain_db) {
  if (s_.mixer) s_.mixer->add(current_.get(), route(), linear_gain());
}

Route SourceRings::route() const {
  return s_.route ? Route::to_channels(s_.channels, *s_.route)
                  : Route::standard(s_.channels, s_.device_channels);
}

float SourceRings::linear_gain() const noexcept {
  return muted_ ? 0.0f : static_cast<float>(std::pow(10.0, gain_db_ / 20.0));
}

bool SourceRings::released(const PlayoutStream& s) const noexcept {
  return s_.mixer ? s_.mixer->releasable(s) : s.detached.load(std::memory_order_acquire);
}

void SourceRings::restart(frames_t start_frame, frames_t old_leave_at, frames_t now_frame) {
  // A ring that has not started playing has nothing to fade: it goes at once. Otherwise a ring
  // placed far ahead (a bad SR mapping) would stay in the mixer until its leave point.
  if (current_->start_frame > now_frame) old_leave_at = 0;
  if (old_.size() + 1 >= kMaxStreams) {
    // Bound what one source holds in the mixer: the oldest leaving ring goes at once.
    if (s_.mixer) s_.mixer->remove(old_.front().get(), 0);
    ++placements_forced_;
  }
  if (s_.mixer)
    s_.mixer->remove(current_.get(), old_leave_at);
  else
    current_->detached.store(true);
  old_.push_back(std::move(current_));
  current_ = std::make_unique<PlayoutStream>(s_.id, s_.channels, s_.ring_frames, start_frame);
  ++placements_;
  if (s_.mixer) s_.mixer->add(current_.get(), route(), linear_gain());
}

void SourceRings::collect(bool leaving) {
  for (auto it = old_.begin(); it != old_.end();) {
    PlayoutStream& o = **it;
    if (!released(o)) {
      ++it;
      continue;
    }
    freed_.underruns += o.underrun_events.load(std::memory_order_relaxed);
    freed_.underrun_frames += o.underrun_frames.load(std::memory_order_relaxed);
    freed_.frames_played += o.frames_played.load(std::memory_order_relaxed);
    freed_.frames_skipped += o.frames_skipped.load(std::memory_order_relaxed);
    it = old_.erase(it);
  }
  // The mixer refused the current ring (every slot taken): offer it again once it is back.
  if (s_.mixer && !leaving && released(*current_)) {
    ++mixer_refusals_;
    s_.mixer->add(current_.get(), route(), linear_gain());
  }
}

void SourceRings::leave(frames_t end) {
  if (s_.mixer)
    s_.mixer->remove(current_.get(), end);
  else
    current_->detached.store(true);
}

bool SourceRings::drained() const noexcept {
  if (!released(*current_)) return false;
  for (const auto& o : old_)
    if (!released(*o)) return false;
  return true;
}

void SourceRings::set_gain_db(double db, frames_t at) {
  gain_db_ = db;
  if (s_.mixer) s_.mixer->set_gain(current_.get(), linear_gain(), at);
}

void SourceRings::set_muted(bool muted, frames_t at) {
  muted_ = muted;
  if (s_.mixer) s_.mixer->set_gain(current_.get(), linear_gain(), at);
}

bool SourceRings::set_route(std::optional<std::vector<int>> channels, frames_t at) {
  auto old = std::move(s_.route);
  s_.route = std::move(channels);
  if (s_.mixer && !s_.mixer->set_route(current_.get(), route(), at)) {
    s_.route = std::move(old);
    return false;
  }
  return true;
}

std::string SourceRings::route_text() const {
  std::string r;
  if (s_.route)
    for (std::size_t i = 0; i < s_.route->size(); ++i)
      r += (i ? "," : "") + std::to_string((*s_.route)[i] + 1);
  return r;
}

SourceRings::Totals SourceRings::totals() const noexcept {
  Totals t = freed_;
  auto add = [&t](const PlayoutStream& x) {
    t.underruns += x.underrun_events.load(std::memory_order_relaxed);
    t.underrun_frames += x.underrun_frames.load(std::memory_order_relaxed);
    t.frames_played += x.frames_played.load(std::memory_order_relaxed);
    t.frames_skipped += x.frames_skipped.load(std::memory_order_relaxed);
  };
  add(*current_);
  for (const auto& o : old_) add(*o);
  return t;
}

}  // namespace rtpnode
