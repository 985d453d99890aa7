#include "node/node.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "node/atomic_file.hpp"
#include "node/control_api.hpp"
#include "node/file_backend.hpp"
#include "node/net_address.hpp"
#include "node/rt_scheduling.hpp"

namespace rtpnode {

namespace {
/// The offline render's virtual clock (0: none). Loop thread only.
mono_ns_t g_virtual_now = 0;
}  // namespace

mono_ns_t node_now_ns() {
  return g_virtual_now != 0 ? g_virtual_now : static_cast<mono_ns_t>(uv_hrtime());
}

void set_node_virtual_now(mono_ns_t t) {
  g_virtual_now = t;
}

namespace {
mono_ns_t now_ns() {
  return node_now_ns();
}
}  // namespace

Node::Node(NodeConfig cfg) : cfg_(std::move(cfg)), clock_(48000), events_(cfg_.event_log) {
  // Sockets first: a port in use is reported without touching the audio device.
  uv_loop_init(&loop_);
  char host[256] = "localhost";
  std::size_t host_len = sizeof host;
  uv_os_gethostname(host, &host_len);
  rtcp_ = std::make_unique<RtcpSession>(
      uv_hrtime() ^ (static_cast<std::uint64_t>(uv_os_getpid()) << 32),
      std::string("rtpnode@") + host, 8 * static_cast<std::size_t>(cfg_.max_sources) + 65);
  try {
    auto on_endpoint = [this](const MediaEndpoint& e, std::size_t listen) {
      on_call_endpoint(e, listen);
    };
    if (!cfg_.pcap.empty())
      replay_ = std::make_unique<CaptureReplay>(&loop_, cfg_.pcap, cfg_.listens,
                                                cfg_.listens.empty(), cfg_.channels, on_endpoint);
    else if (!cfg_.capture.empty())
      replay_ = std::make_unique<CaptureReplay>(
          &loop_, CaptureReplay::LiveSource{cfg_.capture, cfg_.capture_filter}, cfg_.listens,
          cfg_.listens.empty(), cfg_.channels, on_endpoint);
    else
      udp_ = std::make_unique<UdpListener>(&loop_, cfg_.listens);
    sources_ = std::make_unique<SourceTable>(
        SourceTable::Limits{cfg_.max_sources, cfg_.source_timeout, cfg_.sync_rtcp,
                            cfg_.sources_per_host_limit(), cfg_.sync_absolute, cfg_.playout_delay},
        [this](const SourceTable::NewSource& n) { return make_source(n); }, events_, std::cerr);
    demux_ = std::make_unique<Demux>(cfg_, *sources_, *rtcp_, std::cerr);
    if (!cfg_.sap.empty()) {
      sap_dir_ = std::make_unique<SapDirectory>(cfg_.sap_filter,
                                                static_cast<std::size_t>(cfg_.max_sources));
      sap_rx_ = std::make_unique<SapReceiver>(
          &loop_, cfg_.sap,
          [this](std::span<const std::uint8_t> b, const sockaddr* from, mono_ns_t arrival) {
            on_sap(b, from, arrival);
          });
    }
    demux_->set_event_sink([this](const TelephoneEventReceiver::Event& e, std::size_t listen,
                                  const sockaddr* from, std::uint32_t ssrc,
                                  std::uint32_t clock_rate) {
      on_telephone_event(e, listen, from, ssrc, clock_rate);
    });
    if (cfg_.http) {
      HttpServer::Options o;
      o.address = cfg_.http->address;
      o.port = cfg_.http->port;
      o.allow_remote = cfg_.http_allow_remote;
      o.bearer_token = cfg_.http_token;
      http_ = std::make_unique<HttpServer>(&loop_, o,
                                           [this](const HttpRequest& r) { return on_http(r); });
    }
    backend_ = make_audio_backend(cfg_);
    // Ramps of 5 ms on join, leave, mute, gain and route changes (issue #4: "nothing clicks").
    ramp_frames_ = static_cast<frames_t>(std::llround(backend_->sample_rate() * 0.005));
    // A source holds at most Source::kMaxStreams rings (current + leaving after re-placements),
    // plus one whose removal is in flight when it cuts the oldest short.
    mixer_ = std::make_unique<Mixer>(
        backend_->channels(),
        (Source::kMaxStreams + 1) * static_cast<std::size_t>(cfg_.max_sources), ramp_frames_);
    backend_->open(*mixer_);
    factory_ = SourceFactory{&cfg_,
                             mixer_.get(),
                             &clock_,
                             rtcp_.get(),
                             &sources_->timeline(),
                             backend_->sample_rate(),
                             backend_->channels(),
                             0,
                             ramp_frames_,
                             1,
                             &wall_};
  } catch (...) {
    close_loop();
    throw;
  }
  clock_ = DeviceClock(backend_->sample_rate());
  if (http_ && cfg_.mdns) advertise(std::string(host, host_len));
}

void Node::advertise(const std::string& host) {
  MdnsAdvertiser::Service s;
  s.name = cfg_.name.empty() ? host : cfg_.name;
  if (s.name.size() > 63) s.name.resize(63);  // RFC 6763 §4.1.1: one DNS label
  s.port = http_->port();
  const std::string& addr = cfg_.http->address;
  s.loopback_only = addr.rfind("127.", 0) == 0 || addr == "::1";
  s.txt = {"txtvers=1", "stats=/stats", "metrics=/metrics", "sources=/sources",
           std::string("sync=") + (cfg_.sync_absolute ? "absolute"
                                   : cfg_.sync_rtcp   ? "rtcp"
                                                      : "none")};
  if (cfg_.sync_absolute)
    s.txt.push_back(
        "playout_delay_ms=" +
        std::to_string(std::llround(static_cast<double>(cfg_.playout_delay.count()) / 1e6)));
  mdns_ = std::make_unique<MdnsAdvertiser>(&loop_, std::move(s), std::cerr);
}

void Node::close_loop() {
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
}

Node::~Node() {
  mdns_.reset();  // frees its libuv handles through avahi, before close_loop() closes the rest
  if (!backend_->shutdown(std::chrono::seconds(2), !device_.up()) || device_abandoned_)
    (void)
        mixer_.release();  // PortAudio may still hold it: leaked on purpose, the process is ending
  close_loop();
}

void Node::check_device(mono_ns_t now) {
  if (suspended_) return;  // released on purpose: no callback is expected
  const auto change = device_.update(mixer_->position().callbacks, backend_->stream_active(), now);
  if (change) {
    std::cerr << "rtpnode: " << describe(*change) << "\n";
    if (change->state == DeviceState::running)
      event("device_recovered", {{"callbacks", change->callbacks}});
    else
      event("device_lost", {{"state", to_string(change->state)},
                            {"callbacks", change->callbacks},
                            {"since_ms", change->since_ms}});
  }
  if (device_.up()) return;
  if (!cfg_.device_retry) {
    std::cerr << "rtpnode: --device-retry off: exiting (status " << kExitDeviceLost << ")\n";
    stop();
    return;
  }
  if (device_.reopen_due(now)) reopen_device(now);
}

void Node::start_new_backend(bool continue_clock) {
  std::unique_ptr<AudioBackend> next = make_audio_backend(cfg_);
  if (next->sample_rate() != clock_.rate() || next->channels() != mixer_->device_channels())
    throw DeviceError(
        "the device is back at " + std::to_string(static_cast<int>(next->sample_rate())) + " Hz, " +
        std::to_string(next->channels()) + " ch; this node plays at " +
        std::to_string(static_cast<int>(clock_.rate())) + " Hz, " +
        std::to_string(mixer_->device_channels()) + " ch (restart rtpnode to follow it)");
  next->open(*mixer_);
  if (continue_clock) {
    const double stream_now = next->stream_time();
    mixer_->resume_at(clock_.frame_at(now_ns()), stream_now, stream_now > 0 ? clock_.rate() : 0);
    // The first cycles may run before start() returns (JACK's activation blocks this thread for
    // 10-20 ms): what the sources placed while the device slept is in their rings by then.
    // Audio whose frame went by while the device opened (about 70 ms here) is skipped.
    for (Source* s : sources_->active()) s->render(clock_, now_ns());
  }
  next->start();
  backend_ = std::move(next);
  backend_released_ = false;
  reopen_callbacks_ = mixer_->position().callbacks;
}

void Node::suspend_device(mono_ns_t now) {
  if (!backend_->shutdown(std::chrono::seconds(2), false)) {
    std::cerr << "rtpnode: the idle audio device was not released within 2 s; exiting (status "
              << kExitDeviceLost << ")\n";
    device_abandoned_ = true;
    stop();
    return;
  }
  backend_released_ = true;
  suspended_ = true;
  suspended_at_ = now;
  ++suspensions_;
  std::cerr << "rtpnode: no source for " << format_duration(cfg_.idle_suspend)
            << ": audio device released until the next source (--idle-suspend)\n";
  event("device_suspended", {{"idle_ms", static_cast<double>(now - idle_since_) / 1e6}});
}

void Node::resume_device(mono_ns_t now) {
  suspended_ = false;
  device_.watch_from(now);
  try {
    // The frame counter goes on as if the device had played meanwhile: the new source was
    // placed on the clock's extrapolation.
    start_new_backend(true);
  } catch (const std::exception& e) {
    // Left to the device-loss path: no callback comes, the monitor says stopped, and the
    // reopening retries with backoff.
    std::cerr << "rtpnode: cannot open the audio device again after the idle suspension: "
              << e.what() << "\n";
    return;
  }
  const double suspended_ms = static_cast<double>(now - suspended_at_) / 1e6;
  const double wake_ms = static_cast<double>(now_ns() - now) / 1e6;
  std::cerr << "rtpnode: audio device opened again for a new source after "
            << static_cast<int>(suspended_ms) << " ms (in " << static_cast<int>(wake_ms)
            << " ms): " << backend_->describe() << "\n";
  event("device_resumed",
        {{"suspended_ms", suspended_ms}, {"wake_ms", wake_ms}, {"device", backend_->describe()}});
}

void Node::reopen_device(mono_ns_t now) {
  if (!backend_released_) {
    if (!backend_->shutdown(std::chrono::seconds(2), true)) {
      std::cerr << "rtpnode: the lost audio device was not released within 2 s; exiting (status "
                << kExitDeviceLost << ") for the service manager to restart rtpnode\n";
      device_abandoned_ = true;
      stop();
      return;
    }
    backend_released_ = true;
  }
  const double outage_ms = static_cast<double>(now - device_.last_progress_ns()) / 1e6;
  try {
    // The frame counter goes on from where the device stopped: the clock sees the outage as a
    // jump, and the sources drop what it made stale (Source::on_device_jump).
    start_new_backend(false);
  } catch (const std::exception& e) {
    ++device_reopen_failures_;
    device_.reopen_failed(now);
    if (reopen_error_ != e.what()) {
      reopen_error_ = e.what();
      std::cerr << "rtpnode: cannot reopen the audio device yet (retrying, at most every 5 s): "
                << reopen_error_ << "\n";
    }
    return;
  }
  reopen_error_.clear();
  ++device_reopens_;
  device_.reopened(now);
  std::cerr << "rtpnode: audio device reopened after " << static_cast<int>(outage_ms)
            << " ms: " << backend_->describe() << "\n";
  event("device_reopened", {{"attempts", device_.attempts()},
                            {"outage_ms", outage_ms},
                            {"device", backend_->describe()}});
}

std::unique_ptr<Source> Node::make_source(const SourceTable::NewSource& n) {
  factory_.lead_frames = lead_frames_;  // known once the device runs (tick)
  auto s = factory_(n);
  if (n.listen != nullptr &&
      muted_listens_.contains(static_cast<std::size_t>(n.listen - cfg_.listens.data())))
    s->set_muted(true, clock_, now_ns());
  if (!cfg_.record.empty() && n.listen != nullptr) {
    const auto listen = static_cast<std::size_t>(n.listen - cfg_.listens.data());
    if (auto it = listen_calls_.find(listen); it != listen_calls_.end()) {
      const std::size_t call = it->second.first;
      const int side = it->second.second;
      if (recordings_closed_.contains(call)) return s;  // over and written: not reopened
      auto& rec = recorders_[call];
      if (!rec) {
        const DiscoveredCall& c = replay_->discovery()->calls()[call];
        const std::string path = cfg_.record + "/" + call_recording_name(c.start_ns, c.id);
        try {
          rec = std::make_shared<CallRecorder>(path, static_cast<int>(std::lround(clock_.rate())));
          std::cerr << "rtpnode: recording call " << c.id << " to " << path << "\n";
        } catch (const std::exception& e) {
          std::cerr << "rtpnode: " << e.what() << "\n";
          recorders_.erase(call);
          return s;
        }
      }
      std::shared_ptr<CallRecorder> r = rec;  // the source keeps the recording open
      s->set_tap([r, side](frames_t frame, const float* samples, frames_t frames, int channels) {
        r->add(side, frame, samples, frames, channels);
      });
    }
  }
  return s;
}

void Node::render_tick() {
  last_tick_ = now_ns();
  check_device(now_ns());
  const DevicePosition pos = mixer_->position();
  service_.tick(now_ns(), pos.callbacks, suspended_);
  read_device_clock(pos, now_ns());
  if (!clock_.valid()) return;
  // Frames before the one playing now are final: --record writes them out.
  for (auto& [call, rec] : recorders_) rec->flush_before(clock_.frame_at(now_ns()));
  close_finished_recordings(now_ns());
  if (!receiving_) {
    // Start receiving once the device runs: sources are anchored on its frame counter.
    if (lead_frames_ == 0) {
      const frames_t period = pos.block_frames > 0 ? pos.block_frames : 256;
      lead_frames_ =
          cfg_.render_lead.count() > 0
              ? ns_to_frames(cfg_.render_lead.count(), static_cast<std::int64_t>(clock_.rate()))
              : period + ns_to_frames(10'000'000, static_cast<std::int64_t>(clock_.rate()));
    }
    DatagramSink sink = [this](const ReceivedDatagram& d) {
      const std::size_t sources = sources_->active().size();
      demux_->on_datagram(d, clock_);
      datagrams_pending_ = true;  // rendered after this poll's datagrams (render_arrivals)
      if (idle_ && !sources_->active().empty()) {
        set_render_cadence(false);  // a source: render
        if (suspended_) resume_device(now_ns());
      } else if (!idle_ && sources_->active().size() != sources) {
        schedule_render(now_ns());  // a new source may be due before the armed timer
      }
    };
    if (replay_)
      replay_->start(std::move(sink), [this] { on_capture_end(); });
    else
      udp_->start(std::move(sink));
    receiving_ = true;
    std::string listening;
    for (const auto& l : cfg_.listens) listening += " " + l.describe();
    if (!cfg_.sap.empty()) listening += " SAP announcements";
    service_.ready("playing on " + backend_->describe() +
                   (replay_ ? "; " + input_text() + " for" : "; listening on") +
                   (listening.empty() ? " the calls it holds" : listening));
  }
  const mono_ns_t now = now_ns();
  if (cfg_.sync_absolute) follow_wall_clock(now);
  // The loop's own lateness: how long after the render was due this tick came (the timer is
  // armed for the earliest source's deadline). A long one means this thread was blocked or
  // descheduled, and audio it should have rendered meanwhile may have run out.
  if (!idle_ && render_due_ != 0) {
    note_lateness(std::max<mono_ns_t>(now - render_due_, 0));
    ++render_wakes_;
  }
  for (Source* s : sources_->active()) s->render(clock_, now);
  expire_sap_sessions(now);
  expire_sources(now);
  if (!idle_ && sources_->active().empty() && sources_->draining() == 0) {
    set_render_cadence(true);
    idle_since_ = now;
  }
  if (idle_ && !suspended_ && cfg_.idle_suspend.count() > 0 && device_.up() &&
      now - idle_since_ >= cfg_.idle_suspend.count())
    suspend_device(now);
  if (now - last_watch_ >= 100'000'000) {
    last_watch_ = now;
    poll_wall_clock();
    const double lead_ms = static_cast<double>(lead_frames_) * 1000.0 / clock_.rate();
    events_.check(now, sources_->active(), mixer_->xruns(), max_lateness_, lead_ms);
    max_lateness_ = 0;
    for (Source* s : sources_->active()) warn_format(*s);
  }
}

void Node::poll_wall_clock() {
  const bool was_synced = wall_.sync_state().synced;
  const bool first = wall_polls_++ == 0;
  const std::int64_t step = wall_.poll();
  if (!cfg_.sync_absolute) return;  // reported in the stats; only absolute playout depends on it
  const ClockSyncState& st = wall_.sync_state();
  if (step != 0) {
    std::cerr << "rtpnode: the wall clock stepped by " << static_cast<double>(step) / 1e6
              << " ms; every source is placed again\n";
    event("wall_clock_step", {{"step_ms", static_cast<double>(step) / 1e6}});
  }
  if (first ? !st.synced : st.synced != was_synced) {
    if (st.synced)
      std::cerr << "rtpnode: the wall clock is synchronised (max error " << st.maxerror_ms
                << " ms)\n";
    else
      std::cerr << "rtpnode: warning: the wall clock is not synchronised (adjtimex: "
                << (st.known ? "STA_UNSYNC" : "unreadable")
                << "); --sync absolute plays in step with other nodes only once chrony or ptp4l "
                   "discipline it\n";
    event(st.synced ? "wall_clock_synchronised" : "wall_clock_unsynchronised",
          {{"maxerror_ms", st.maxerror_ms}, {"esterror_ms", st.esterror_ms}});
  }
}

void Node::follow_wall_clock(mono_ns_t now) {
  if (wall_polls_ == 0) poll_wall_clock();
  const double move = sources_->follow_wall_clock(clock_, now, wall_.ntp_minus_monotonic_ns());
  if (std::abs(move) > clock_.rate() / 1000.0) {
    const double ms = move * 1000.0 / clock_.rate();
    std::cerr << "rtpnode: the absolute timeline moved by " << ms
              << " ms (wall clock step or device clock re-anchored); sources are placed again\n";
    event("timeline_step", {{"move_ms", ms}});
  }
}

void Node::warn_format(Source& s) const {
  for (std::string w = s.take_format_warning(); !w.empty(); w = s.take_format_warning()) {
    const Source::Params& p = s.params();
    std::cerr << "rtpnode: warning: source " << hex32(p.ssrc) << " from " << p.remote << " on port "
              << p.port << ": " << w << "\n";
  }
}

void Node::expire_sources(mono_ns_t now) {
  mixer_->flush_deferred();
  while (mixer_->take_retired() != nullptr) {
    // Sources free their streams once Mixer::releasable(); the retire ring only needs draining.
  }
  sources_->expire(now, clock_.frame_at(now));
}

void Node::tick() {
  render_tick();
  if (!idle_) schedule_render(now_ns());
}

void Node::read_device_clock(const DevicePosition& pos, mono_ns_t now) {
  last_clock_read_ = now;
  // After a reopening or a resumption, the published position is the old stream's until the
  // new one calls back.
  if (pos.callbacks > reopen_callbacks_) clock_.update(pos, backend_->stream_time(), now);
  if (clock_.jumps() != device_jumps_seen_) {
    device_jumps_seen_ = clock_.jumps();
    // Said on stderr (the first few, then every hundredth): a jump moves every source's place,
    // and a sync figure that is off for a while after one needs it in the log to be read.
    if (device_jumps_seen_ <= 5 || device_jumps_seen_ % 100 == 0)
      std::cerr << "rtpnode: the device position left its clock map by "
                << -clock_.last_jump_frames()
                << " frames (negative: fell behind, an xrun or stall; jump " << device_jumps_seen_
                << "); the map is re-anchored\n";
    sources_->on_device_jump(clock_.last_jump_frames(), clock_, now);
  }
}

void Node::note_lateness(mono_ns_t late) {
  max_lateness_ = std::max(max_lateness_, late);
  lateness_[lateness_count_++ % kLatenessWindow] = static_cast<float>(late) / 1e6f;
  render_due_ = 0;  // measured once
}

void Node::render_arrivals() {
  // After each poll that read datagrams: the sources that got one decode it now (what Source
  // renders is what is present; a deadline only decides concealment), then the deadline timer
  // is armed again for what they hold.
  if (!datagrams_pending_) return;
  datagrams_pending_ = false;
  if (idle_ || !clock_.valid()) return;
  const mono_ns_t now = now_ns();
  // The render deadline passed before this thread ran again (a stall, or it was descheduled):
  // measured here, since after a wait in epoll the datagrams are handled before the timers.
  if (render_due_ != 0 && now > render_due_) note_lateness(now - render_due_);
  // While packets come on time the deadline timer never fires (it is armed again after each
  // arrival): the device clock is read here too, at most every kClockReadEveryNs, so that its
  // fit keeps getting readings (and the absolute timeline follows it).
  // Offline, the file's stream time moves in whole blocks: the clock is read at each block
  // start only (run_offline's tick), where that time and the loop clock agree exactly.
  if (now - last_clock_read_ >= kClockReadEveryNs && !suspended_ && !offline_) {
    read_device_clock(mixer_->position(), now);
    if (!clock_.valid()) return;
    if (cfg_.sync_absolute) follow_wall_clock(now);
  }
  bool rendered = false;
  for (Source* s : sources_->active())
    if (s->take_render_request()) {
      s->render(clock_, now);
      rendered = true;
    }
  if (rendered) schedule_render(now);
}

void Node::schedule_render(mono_ns_t now) {
  if (offline_) return;  // run_offline renders at every block
  // Event-driven (issue #18): sleep until the earliest source must render again (nothing in
  // its jitter buffer becomes due before: Source::next_render_ns), no longer than
  // kMaxRenderSleepMs (device health, events, expiry), at the device cadence while the
  // device has not started or streams fade out. libuv's timers count whole milliseconds: the
  // wake is rounded up, late by < 1 ms, well inside the render lead's 10 ms margin.
  const mono_ns_t busy = static_cast<mono_ns_t>(render_every_ms_) * 1'000'000;
  // At most kMaxRenderSleepMs after the last tick, even while arrivals keep re-arming the timer:
  // the tick also checks the device, pings the watchdog and writes events.
  mono_ns_t due = std::min(now, last_tick_) + kMaxRenderSleepMs * 1'000'000;
  if (!clock_.valid() || !receiving_ || sources_->draining() > 0) due = now + busy;
  if (clock_.valid())
    for (const Source* s : sources_->active())
      due = std::min(due, s->next_render_ns(clock_, now, busy));
  const mono_ns_t wait = std::max<mono_ns_t>(due - now, 0);
  const auto ms = std::clamp<std::uint64_t>(
      static_cast<std::uint64_t>((wait + 999'999) / 1'000'000), 1, kMaxRenderSleepMs);
  render_due_ = now + wait;
  uv_timer_start(
      &render_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->tick(); }, ms, 0);
}

void Node::set_render_cadence(bool idle) {
  idle_ = idle;
  render_due_ = 0;  // the idle gap is not the loop's lateness
  if (offline_) return;
  std::uint64_t idle_every = kIdleTickMs;
  if (service_.watchdog_enabled())  // the watchdog is pinged every third of its interval
    idle_every = std::min<std::uint64_t>(
        idle_every, std::max<std::uint64_t>(1, static_cast<std::uint64_t>(
                                                   service_.watchdog_interval_ns() / 3'000'000)));
  // Idle: a periodic timer. Active: render at once; each tick then arms the next (schedule_render).
  uv_timer_start(
      &render_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->tick(); },
      idle ? idle_every : 0, idle ? idle_every : 0);
}

void Node::reload() {
  std::string error;
  Reload r = reloader_(error);
  if (!r.config) {
    std::cerr << "rtpnode: SIGHUP: configuration not applied: " << error << "\n";
    event("config_reload", {{"applied", false}, {"error", error}});
    return;
  }
  std::vector<std::string> live, restart;
  for (const std::string& key : r.changed)
    (std::find(kLiveKeys.begin(), kLiveKeys.end(), key) != kLiveKeys.end() ? live : restart)
        .push_back(key);
  cfg_.gains = r.config->gains;
  cfg_.offsets = r.config->offsets;
  cfg_.routes = r.config->routes;
  cfg_.min_latency = r.config->min_latency;
  cfg_.max_latency = r.config->max_latency;
  const mono_ns_t now = now_ns();
  const auto rate = static_cast<std::int64_t>(std::llround(clock_.rate()));
  for (Source* s : sources_->active()) {
    const Source::Params& p = s->params();
    const SourceSettings set = cfg_.settings_for(p.port, p.ssrc, !p.raw);
    s->set_gain_db(set.gain_db, clock_, now);
    if (ns_to_frames(set.offset.count(), rate) != p.offset_frames)
      s->set_offset(ns_to_frames(set.offset.count(), rate));
    (void)s->set_route(set.route, clock_, now);  // a route change under way: the next SIGHUP
    s->set_latency_bounds(cfg_.min_latency.count(), cfg_.max_latency.count());
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& k : v) out += (out.empty() ? "" : ", ") + k;
    return out.empty() ? std::string("nothing") : out;
  };
  std::cerr << "rtpnode: SIGHUP: configuration re-read; applied: " << join(live);
  if (!restart.empty()) std::cerr << "; needs a restart (not applied): " << join(restart);
  std::cerr << "\n";
  event("config_reload", {{"applied", true}, {"live", live}, {"needs_restart", restart}});
}

std::string Node::input_text() const {
  return cfg_.pcap.empty()
             ? "tapping " + cfg_.capture +
                   (cfg_.capture_filter.empty() ? "" : " (" + cfg_.capture_filter + ")")
             : "replaying " + cfg_.pcap;
}

void Node::close_finished_recordings(mono_ns_t now) {
  for (auto it = recorders_.begin(); it != recorders_.end();) {
    const std::size_t call = it->first;
    if (it->second.use_count() > 1) {  // a source still taps it
      recorder_idle_since_.erase(call);
      ++it;
      continue;
    }
    const mono_ns_t idle = recorder_idle_since_.try_emplace(call, now).first->second;
    const bool ended = replay_ && replay_->discovery() != nullptr &&
                       replay_->discovery()->calls()[call].end_ns != 0;
    if (!ended && now - idle < kRecordingIdle) {
      ++it;
      continue;
    }
    close_recording(call, *it->second);
    recordings_closed_.insert(call);
    recorder_idle_since_.erase(call);
    it = recorders_.erase(it);
  }
}

void Node::close_recording(std::size_t call, CallRecorder& rec) {
  rec.close();
  std::cerr << "rtpnode: wrote " << rec.path() << " ("
            << static_cast<double>(rec.frames_written()) / clock_.rate() << " s)\n";
  if (replay_ && replay_->discovery() != nullptr)
    event("recording_closed",
          {{"call", replay_->discovery()->calls()[call].id},
           {"path", rec.path()},
           {"seconds", static_cast<double>(rec.frames_written()) / clock_.rate()}});
}

void Node::on_call_endpoint(const MediaEndpoint& e, std::size_t listen) {
  listen_calls_[listen] = {e.call, e.side};
  const DiscoveredCall& call = replay_->discovery()->calls()[e.call];
  const char* side = e.side == 0 ? "caller" : "callee";
  const char* channel = cfg_.channels < 2 ? "" : e.side == 0 ? ", left" : ", right";
  // --select: the other calls' sources are muted from their first frame (still recorded).
  const bool selected = cfg_.select == "all" || cfg_.select == call.id;
  if (!selected) muted_listens_.insert(listen);
  std::cerr << "rtpnode: call " << call.id << ": the " << side << "'s voice to "
            << endpoint_text(e.address) << (e.codecs.empty() ? "" : " (" + e.codecs + ")")
            << channel << (call.sip ? "" : " (found by RTP heuristics)")
            << (selected ? "" : " (not --select: muted)") << "\n";
  event("call_stream", {{"call", call.id},
                        {"from", call.from},
                        {"to", call.to},
                        {"side", side},
                        {"destination", endpoint_text(e.address)},
                        {"codecs", e.codecs},
                        {"sip", call.sip}});
}

void Node::on_telephone_event(const TelephoneEventReceiver::Event& e, std::size_t listen,
                              const sockaddr* from, std::uint32_t ssrc, std::uint32_t clock_rate) {
  const double duration_ms = 1000.0 * e.duration_ticks / std::max<std::uint32_t>(1, clock_rate);
  nlohmann::json f{{"digit", std::string(1, e.digit)}, {"event_code", e.event},
                   {"duration_ms", duration_ms},       {"volume_dbm0", -static_cast<int>(e.volume)},
                   {"end_seen", e.end_seen},           {"ssrc", ssrc},
                   {"from", address_text(from)}};
  std::string where;
  if (replay_) {
    const double t = static_cast<double>(replay_->capture_time_ns(e.first_arrival)) / 1e9;
    f["capture_time"] = t;
  }
  if (auto it = listen_calls_.find(listen); it != listen_calls_.end()) {
    const DiscoveredCall& call = replay_->discovery()->calls()[it->second.first];
    f["call"] = call.id;
    f["side"] = it->second.second == 0 ? "caller" : "callee";
    call_digits_[it->second.first] += e.digit;
    where = " in call " + call.id + " (" + (it->second.second == 0 ? "caller" : "callee") + ")";
  }
  std::cerr << "rtpnode: DTMF " << e.digit << " (event " << static_cast<int>(e.event) << ", "
            << duration_ms << " ms" << (e.end_seen ? "" : ", end not seen") << ") from "
            << address_text(from) << where << "\n";
  event("dtmf", f);
}

void Node::on_capture_end() {
  demux_->flush_events();
  // Calls that ended with the capture's last datagrams close now, not at the next idle tick
  // (which may come after the drain below).
  close_finished_recordings(now_ns());
  const CaptureStats& c = replay_->capture_stats();
  const SipTcpStats& t = replay_->tcp_stats();
  const CaptureReplayStats& r = replay_->stats();
  const double seconds =
      static_cast<double>(replay_->last_time_ns() - replay_->first_time_ns()) / 1e9;
  std::cerr << "rtpnode: " << cfg_.pcap << ": replayed " << seconds << " s of capture, "
            << r.delivered << " datagrams played of " << c.udp << " UDP in " << c.frames
            << " records (SIP " << r.sip << ", to no --listen port or call " << r.not_listened
            << ", not IP " << c.not_ip << ", neither UDP nor TCP " << c.not_udp << ", SIP over TCP "
            << t.messages << " of " << t.segments << " TCP segments (holes " << t.gaps
            << "), cut by the snap length " << c.truncated << ", malformed " << c.malformed
            << ", fragments reassembled " << c.reassembled << ", fragments dropped "
            << c.fragments_dropped << ")"
            << (replay_->error().empty() ? "" : "; the file ended early: " + replay_->error())
            << "\n";
  event("capture_ended",
        {{"file", cfg_.pcap},
         {"capture_seconds", seconds},
         {"datagrams_played", r.delivered},
         {"datagrams_not_listened", r.not_listened},
         {"records", c.frames},
         {"sip_messages", r.sip},
         {"sip_over_tcp", t.messages},
         {"calls", replay_->discovery() ? replay_->discovery()->calls().size() : 0},
         {"truncated", c.truncated},
         {"malformed", c.malformed},
         {"error", replay_->error()}});
  // What is buffered plays out within the playout delay (at most --max-latency, or the fixed
  // --latency) plus the render lead; then the node stops as at the end of --duration.
  const auto delay = cfg_.latency_auto ? cfg_.max_latency : cfg_.latency;
  const auto drain_ms = static_cast<std::uint64_t>(
      (delay.count() + frames_to_ns(lead_frames_, static_cast<std::int64_t>(clock_.rate()))) /
          1'000'000 +
      200);
  if (offline_) {
    offline_stop_at_ = now_ns() + static_cast<mono_ns_t>(drain_ms) * 1'000'000;
    return;
  }
  uv_timer_init(&loop_, &capture_end_timer_);
  capture_end_timer_.data = this;
  uv_timer_start(
      &capture_end_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->stop(); }, drain_ms, 0);
}

void Node::stop() {
  service_.stopping();
  stop_requested_ = true;
  uv_stop(&loop_);
}

void Node::install_signals() {
  for (auto* sig : {&sigint_, &sigterm_}) {
    uv_signal_init(&loop_, sig);
    sig->data = this;
  }
  auto on_signal = [](uv_signal_t* s, int) { static_cast<Node*>(s->data)->stop(); };
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
}

int Node::finish() {
  const bool lost = !device_.up();
  if (!backend_->shutdown(std::chrono::milliseconds(1500), lost)) device_abandoned_ = true;
  if (device_abandoned_)
    std::cerr
        << "rtpnode: the audio device did not stop within 1.5 s; leaving it to the process exit\n";
  report(true);
  for (auto& [call, rec] : recorders_) close_recording(call, *rec);
  if (!cfg_.report.empty()) write_report();
  return device_abandoned_ || (lost && !cfg_.device_retry) ? kExitDeviceLost : 0;
}

int Node::run_offline() {
  auto* file = dynamic_cast<FileBackend*>(backend_.get());
  if (file == nullptr || !replay_) throw std::logic_error("run_offline: --pcap into --output only");
  offline_ = true;
  replay_->set_driven();
  // The virtual clock starts at the real one (times in events and stats stay plausible) and
  // then moves only with the render: block k of the output starts at start + k * period / rate.
  const mono_ns_t start = static_cast<mono_ns_t>(uv_hrtime());
  set_node_virtual_now(start);
  backend_->start();
  started_ns_ = start;
  events_.set_start(started_ns_);
  std::cerr << "rtpnode: rendering offline into " << backend_->describe() << ", latency "
            << cfg_.describe_latency() << "; " << input_text() << " as fast as the CPU allows";
  for (const auto& l : cfg_.listens) std::cerr << " " << l.describe();
  if (cfg_.listens.empty()) std::cerr << " (the calls it holds: SIP/SDP, else RTP heuristics)";
  std::cerr << "\n";
  install_signals();
  idle_ = false;
  const double block_ns = 1e9 * backend_->period() / backend_->sample_rate();
  const mono_ns_t stats_every = cfg_.stats_interval.count();
  mono_ns_t next_stats = start + stats_every;
  const mono_ns_t stop_at =
      cfg_.duration ? start + static_cast<mono_ns_t>(cfg_.duration->count()) : 0;
  for (std::uint64_t block = 0; !stop_requested_; ++block) {
    const auto block_start =
        start + static_cast<mono_ns_t>(std::llround(static_cast<double>(block) * block_ns));
    // Every datagram captured before this block starts arrives first, at its own capture time
    // (that is what the jitter buffers see); the sources that got one decode it then, as
    // render_arrivals does after a poll of the live loop.
    for (auto due = replay_->next_due(); due && *due < block_start; due = replay_->next_due()) {
      set_node_virtual_now(std::max(*due, node_now_ns()));
      replay_->advance();
      render_arrivals();
    }
    set_node_virtual_now(std::max(block_start, node_now_ns()));
    if ((offline_stop_at_ != 0 && block_start >= offline_stop_at_) ||
        (stop_at != 0 && block_start >= stop_at))
      break;
    // The loop's tick before the device takes block `block`: it renders every source a render
    // lead ahead, so the block is in the rings when the mixer pulls it (on this thread, next).
    render_tick();
    if (!file->render(1)) {
      std::cerr << "rtpnode: writing " << cfg_.output << " failed; the render stops here\n";
      break;
    }
    if (stats_every > 0 && block_start >= next_stats) {
      report(false);
      next_stats += stats_every;
    }
    // Signals (SIGINT stops the render) and the HTTP endpoint, between blocks.
    if (block % 64 == 0) uv_run(&loop_, UV_RUN_NOWAIT);
  }
  const int rc = finish();
  set_node_virtual_now(0);
  return rc;
}

int Node::run() {
  if (cfg_.offline()) return run_offline();
  for (const std::string& w : enter_realtime(cfg_.rt_priority))
    std::cerr << "rtpnode: warning: " << w << "\n";
  backend_->start();
  started_ns_ = now_ns();
  events_.set_start(started_ns_);
  std::cerr << "rtpnode: playing on " << backend_->describe() << ", latency "
            << cfg_.describe_latency();
  std::cerr << (replay_ ? "; " + input_text() + " for" : std::string("; listening on"));
  for (const auto& l : cfg_.listens) std::cerr << " " << l.describe();
  if (cfg_.listens.empty() && replay_)
    std::cerr << " the calls it holds (SIP/SDP, else RTP heuristics)";
  if (!cfg_.sap.empty()) {
    std::cerr << (cfg_.listens.empty() ? "" : ";") << " SAP announcements on";
    for (const auto& a : cfg_.sap) std::cerr << " " << a.describe();
    if (!cfg_.sap_filter.empty()) std::cerr << " (sessions named " << cfg_.sap_filter << ")";
  }
  std::cerr << "\n";
  for (const auto& l : cfg_.listens)
    if (!l.sdp_summary.empty()) std::cerr << "rtpnode: --sdp " << l.sdp_summary << "\n";

  uv_timer_init(&loop_, &render_timer_);
  render_timer_.data = this;
  uv_check_init(&loop_, &arrivals_check_);
  arrivals_check_.data = this;
  uv_check_start(&arrivals_check_,
                 [](uv_check_t* c) { static_cast<Node*>(c->data)->render_arrivals(); });
  // The render timer runs at least twice per device period (and at least every 5 ms).
  const int period_ms = backend_->period() > 0
                            ? static_cast<int>(backend_->period() * 1000 / backend_->sample_rate())
                            : 5;
  render_every_ms_ = static_cast<std::uint64_t>(std::clamp(period_ms / 2, 1, 5));
  set_render_cadence(false);

  if (cfg_.stats_interval.count() > 0) {
    uv_timer_init(&loop_, &stats_timer_);
    stats_timer_.data = this;
    const auto every = static_cast<std::uint64_t>(
        std::max<std::int64_t>(1, cfg_.stats_interval.count() / 1'000'000));
    uv_timer_start(
        &stats_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->report(false); }, every,
        every);
  }
  if (cfg_.duration) {
    uv_timer_init(&loop_, &stop_timer_);
    stop_timer_.data = this;
    uv_timer_start(
        &stop_timer_, [](uv_timer_t* t) { static_cast<Node*>(t->data)->stop(); },
        static_cast<std::uint64_t>(cfg_.duration->count() / 1'000'000), 0);
  }
  if (cfg_.rtcp_rr && udp_) {  // a capture replay is a passive tap: nothing is sent
    uv_timer_init(&loop_, &rr_timer_);
    rr_timer_.data = this;
    schedule_receiver_reports();
  }
  if (http_)
    std::cerr << "rtpnode: HTTP on " << cfg_.http->address << " port " << http_->port()
              << (cfg_.http_allow_remote ? "" : " (local clients only)")
              << ": /metrics /stats /sources\n";
  install_signals();
  if (reloader_) {
    uv_signal_init(&loop_, &sighup_);
    sighup_.data = this;
    uv_signal_start(
        &sighup_, [](uv_signal_t* s, int) { static_cast<Node*>(s->data)->reload(); }, SIGHUP);
  }

  uv_run(&loop_, UV_RUN_DEFAULT);
  return finish();
}

}  // namespace rtpnode
