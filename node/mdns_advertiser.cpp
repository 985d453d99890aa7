#include "node/mdns_advertiser.hpp"

#include <avahi-client/client.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>
#include <avahi-common/timeval.h>
#include <avahi-common/watch.h>
#include <net/if.h>
#include <sys/time.h>

#include <algorithm>
#include <map>

// avahi's poll interface wants these two types defined by the provider.
struct AvahiWatch {
  struct FdPoll* fd_poll = nullptr;
  int fd = -1;
  AvahiWatchEvent events{};   ///< what avahi waits for
  AvahiWatchEvent revents{};  ///< what happened, during the callback
  AvahiWatchCallback callback = nullptr;
  void* userdata = nullptr;
};

struct AvahiTimeout {
  uv_timer_t timer{};
  AvahiTimeoutCallback callback = nullptr;
  void* userdata = nullptr;
};

/// One uv_poll_t per file descriptor, shared by every AvahiWatch on it: libuv allows a single
/// poll handle per descriptor, and D-Bus watches one socket for reading and for writing
/// separately.
struct FdPoll {
  uv_poll_t poll{};
  std::vector<AvahiWatch*> watches;
  std::map<int, FdPoll*>* table = nullptr;  ///< the poll's fd table, which holds this entry
};

namespace rtpnode {

namespace {

/// The libuv side of avahi's poll interface: its data is the loop and the fd table.
struct LibuvAvahiPoll {
  AvahiPoll api{};
  uv_loop_t* loop = nullptr;
  std::map<int, FdPoll*> polls;
};

int uv_events(AvahiWatchEvent e) {
  int ev = 0;
  if (e & AVAHI_WATCH_IN) ev |= UV_READABLE;
  if (e & AVAHI_WATCH_OUT) ev |= UV_WRITABLE;
  return ev;
}

void update_fd_poll(FdPoll* p) {
  int ev = 0;
  for (const AvahiWatch* w : p->watches) ev |= uv_events(w->events);
  if (ev == 0) {
    uv_poll_stop(&p->poll);
    return;
  }
  uv_poll_start(&p->poll, ev, [](uv_poll_t* h, int status, int events) {
    auto* fp = static_cast<FdPoll*>(h->data);
    int happened = 0;
    if (events & UV_READABLE) happened |= AVAHI_WATCH_IN;
    if (events & UV_WRITABLE) happened |= AVAHI_WATCH_OUT;
    if (status < 0) happened |= AVAHI_WATCH_ERR;
    // A callback may free watches (even this fd's): dispatch from a copy, re-checking each.
    const std::vector<AvahiWatch*> now = fp->watches;
    for (AvahiWatch* w : now) {
      if (std::find(fp->watches.begin(), fp->watches.end(), w) == fp->watches.end()) continue;
      const int mine = happened & (static_cast<int>(w->events) | AVAHI_WATCH_ERR | AVAHI_WATCH_HUP);
      if (mine == 0) continue;
      w->revents = static_cast<AvahiWatchEvent>(mine);
      w->callback(w, w->fd, w->revents, w->userdata);
      if (std::find(fp->watches.begin(), fp->watches.end(), w) != fp->watches.end())
        w->revents = static_cast<AvahiWatchEvent>(0);
    }
  });
}

AvahiWatch* watch_new(const AvahiPoll* api, int fd, AvahiWatchEvent events,
                      AvahiWatchCallback callback, void* userdata) {
  auto* self = static_cast<LibuvAvahiPoll*>(api->userdata);
  FdPoll*& p = self->polls[fd];
  if (p == nullptr) {
    p = new FdPoll;
    p->table = &self->polls;
    if (uv_poll_init(self->loop, &p->poll, fd) != 0) {
      delete p;
      self->polls.erase(fd);
      return nullptr;
    }
    p->poll.data = p;
  }
  auto* w = new AvahiWatch{p, fd, events, static_cast<AvahiWatchEvent>(0), callback, userdata};
  p->watches.push_back(w);
  update_fd_poll(p);
  return w;
}

void watch_update(AvahiWatch* w, AvahiWatchEvent events) {
  w->events = events;
  update_fd_poll(w->fd_poll);
}

AvahiWatchEvent watch_get_events(AvahiWatch* w) {
  return w->revents;
}

void watch_free(AvahiWatch* w) {
  FdPoll* p = w->fd_poll;
  p->watches.erase(std::remove(p->watches.begin(), p->watches.end(), w), p->watches.end());
  if (p->watches.empty()) {
    p->table->erase(w->fd);
    uv_close(reinterpret_cast<uv_handle_t*>(&p->poll),
             [](uv_handle_t* h) { delete static_cast<FdPoll*>(h->data); });
  } else {
    update_fd_poll(p);
  }
  delete w;
}

void arm(AvahiTimeout* t, const timeval* tv) {
  if (tv == nullptr) {
    uv_timer_stop(&t->timer);
    return;
  }
  // avahi's instants are gettimeofday() times: wait for the difference from now.
  const AvahiUsec usec = -avahi_age(tv);
  const std::uint64_t ms = usec <= 0 ? 0 : static_cast<std::uint64_t>((usec + 999) / 1000);
  uv_timer_start(
      &t->timer,
      [](uv_timer_t* h) {
        auto* to = static_cast<AvahiTimeout*>(h->data);
        to->callback(to, to->userdata);
      },
      ms, 0);
}

AvahiTimeout* timeout_new(const AvahiPoll* api, const timeval* tv, AvahiTimeoutCallback callback,
                          void* userdata) {
  auto* self = static_cast<LibuvAvahiPoll*>(api->userdata);
  auto* t = new AvahiTimeout;
  t->callback = callback;
  t->userdata = userdata;
  uv_timer_init(self->loop, &t->timer);
  t->timer.data = t;
  arm(t, tv);
  return t;
}

void timeout_update(AvahiTimeout* t, const timeval* tv) {
  arm(t, tv);
}

void timeout_free(AvahiTimeout* t) {
  uv_timer_stop(&t->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&t->timer),
           [](uv_handle_t* h) { delete static_cast<AvahiTimeout*>(h->data); });
}

}  // namespace

struct MdnsAdvertiser::Impl {
  LibuvAvahiPoll poll;
  Service service;
  std::ostream& log;
  AvahiClient* client = nullptr;
  AvahiEntryGroup* group = nullptr;
  std::string state = "registering";
  bool said_waiting = false;

  Impl(uv_loop_t* loop, Service s, std::ostream& l) : service(std::move(s)), log(l) {
    poll.loop = loop;
    poll.api.userdata = &poll;
    poll.api.watch_new = watch_new;
    poll.api.watch_update = watch_update;
    poll.api.watch_get_events = watch_get_events;
    poll.api.watch_free = watch_free;
    poll.api.timeout_new = timeout_new;
    poll.api.timeout_update = timeout_update;
    poll.api.timeout_free = timeout_free;
  }

  /// Creates the client; without a system bus even AVAHI_CLIENT_NO_FAIL fails at once: then
  /// it tries again every kRetryMs.
  void connect() {
    int error = 0;
    client = avahi_client_new(&poll.api, AVAHI_CLIENT_NO_FAIL, &Impl::on_client, this, &error);
    if (client != nullptr) return;
    say_waiting(avahi_strerror(error));
    if (retry == nullptr) {
      retry = new uv_timer_t;
      uv_timer_init(poll.loop, retry);
      retry->data = this;
    }
    uv_timer_start(
        retry, [](uv_timer_t* t) { static_cast<Impl*>(t->data)->connect(); }, kRetryMs, 0);
  }

  void say_waiting(const char* why) {
    state = "waiting for avahi-daemon";
    if (said_waiting) return;
    said_waiting = true;
    log << "rtpnode: mDNS: " << why << ": " << kServiceType << " \"" << service.name
        << "\" is advertised once avahi-daemon runs\n";
  }

  ~Impl() {
    // The handle outlives this object until the loop has closed it.
    if (retry != nullptr)
      uv_close(reinterpret_cast<uv_handle_t*>(retry),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }

  static constexpr std::uint64_t kRetryMs = 5000;
  uv_timer_t* retry = nullptr;  ///< heap: freed by its close callback

  static void on_client(AvahiClient* c, AvahiClientState st, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    self->client = c;  // also called from inside avahi_client_new
    switch (st) {
      case AVAHI_CLIENT_S_RUNNING:
        self->register_service();
        break;
      case AVAHI_CLIENT_S_COLLISION:
      case AVAHI_CLIENT_S_REGISTERING:
        // The host name changes: avahi withdraws our records; register again when running.
        if (self->group != nullptr) avahi_entry_group_reset(self->group);
        break;
      case AVAHI_CLIENT_CONNECTING:
        self->say_waiting("avahi-daemon is not running");
        break;
      case AVAHI_CLIENT_FAILURE:
        if (avahi_client_errno(c) == AVAHI_ERR_DISCONNECTED) {
          // The daemon went away (restart): a new client waits for it to come back.
          self->group = nullptr;
          avahi_client_free(c);
          self->client = nullptr;
          self->connect();
          return;
        }
        self->fail(std::string("client: ") + avahi_strerror(avahi_client_errno(c)));
        break;
    }
  }

  static void on_group(AvahiEntryGroup* g, AvahiEntryGroupState st, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    self->group = g;
    switch (st) {
      case AVAHI_ENTRY_GROUP_ESTABLISHED:
        self->state = "advertised";
        self->log << "rtpnode: mDNS: advertised as \"" << self->service.name << "\" ("
                  << kServiceType << ", port " << self->service.port << ")\n";
        break;
      case AVAHI_ENTRY_GROUP_COLLISION: {
        char* alt = avahi_alternative_service_name(self->service.name.c_str());
        self->log << "rtpnode: mDNS: the name \"" << self->service.name
                  << "\" is taken on this network; renamed \"" << alt << "\"\n";
        self->service.name = alt;
        avahi_free(alt);
        avahi_entry_group_reset(g);
        self->register_service();
        break;
      }
      case AVAHI_ENTRY_GROUP_FAILURE:
        self->fail(std::string("entry group: ") +
                   avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
        break;
      case AVAHI_ENTRY_GROUP_UNCOMMITED:
      case AVAHI_ENTRY_GROUP_REGISTERING:
        break;
    }
  }

  void register_service() {
    if (group == nullptr) group = avahi_entry_group_new(client, &Impl::on_group, this);
    if (group == nullptr) {
      fail(std::string("entry group: ") + avahi_strerror(avahi_client_errno(client)));
      return;
    }
    if (!avahi_entry_group_is_empty(group)) return;  // already registered
    AvahiStringList* txt = nullptr;
    for (auto it = service.txt.rbegin(); it != service.txt.rend(); ++it)
      txt = avahi_string_list_add(txt, it->c_str());
    const AvahiIfIndex iface =
        service.loopback_only ? static_cast<AvahiIfIndex>(if_nametoindex("lo")) : AVAHI_IF_UNSPEC;
    int r = avahi_entry_group_add_service_strlst(
        group, iface, AVAHI_PROTO_UNSPEC, static_cast<AvahiPublishFlags>(0), service.name.c_str(),
        kServiceType, nullptr, nullptr, service.port, txt);
    avahi_string_list_free(txt);
    if (r == AVAHI_ERR_COLLISION) {
      on_group(group, AVAHI_ENTRY_GROUP_COLLISION, this);
      return;
    }
    if (r < 0 || (r = avahi_entry_group_commit(group)) < 0) fail(avahi_strerror(r));
  }

  void fail(const std::string& why) {
    state = "failed: " + why;
    log << "rtpnode: mDNS: " << why << "; the node plays on without being advertised\n";
  }
};

MdnsAdvertiser::MdnsAdvertiser(uv_loop_t* loop, Service service, std::ostream& log)
    : impl_(std::make_unique<Impl>(loop, std::move(service), log)) {
  impl_->connect();
}

MdnsAdvertiser::~MdnsAdvertiser() {
  if (impl_->client != nullptr) avahi_client_free(impl_->client);  // frees the group
}

const std::string& MdnsAdvertiser::state() const noexcept {
  return impl_->state;
}
const std::string& MdnsAdvertiser::name() const noexcept {
  return impl_->service.name;
}

}  // namespace rtpnode
