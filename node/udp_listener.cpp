#include "node/udp_listener.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <iostream>
#include <stdexcept>
#include <string>

#include "node/net_address.hpp"
#include "node/receive_time.hpp"

namespace rtpnode {

namespace {

/// Thread: loop. See receive_time.hpp.
void timestamp_datagrams(uv_udp_t* h) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(h), &fd) == 0) enable_receive_timestamps(fd);
}

/// Thread: loop. The arrival of the datagram just read from `h` (kernel timestamp, uv_hrtime
/// scale).
mono_ns_t arrival_ns(uv_udp_t* h) {
  const auto now = static_cast<mono_ns_t>(uv_hrtime());
  uv_os_fd_t fd = -1;
  return uv_fileno(reinterpret_cast<uv_handle_t*>(h), &fd) == 0 ? receive_time_ns(fd, now) : now;
}

/// Thread: setup. Joins `spec`'s multicast group on `h`: for each of its source addresses
/// (source-specific, RFC 4607), or for any sender when it has none. Returns a libuv status.
int join(uv_udp_t* h, const ListenSpec& spec) {
  if (spec.source_addresses.empty())
    return uv_udp_set_membership(h, spec.address.c_str(), nullptr, UV_JOIN_GROUP);
  for (const std::string& source : spec.source_addresses) {
    const int rc = uv_udp_set_source_membership(h, spec.address.c_str(), nullptr, source.c_str(),
                                                UV_JOIN_GROUP);
    if (rc != 0) return rc;
  }
  return 0;
}

/// Thread: setup. Linux delivers a multicast datagram to every socket bound to its port that
/// any socket of the host joined the group for (IP_MULTICAST_ALL); two listens on one port in
/// two groups (two SAP sessions) would each get both streams. Off: a socket gets its own groups.
void only_joined_groups(uv_udp_t* h, bool v6) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(h), &fd) != 0) return;
  const int off = 0;
  if (!v6) {
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &off, sizeof off);
  } else {
#ifdef IPV6_MULTICAST_ALL
    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &off, sizeof off);
#endif
  }
}

}  // namespace

UdpListener::UdpListener(uv_loop_t* loop, const std::vector<ListenSpec>& specs) : loop_(loop) {
  for (std::size_t i = 0; i < specs.size(); ++i) open_listen(specs[i], i);
}

void UdpListener::open_listen(const ListenSpec& spec, std::size_t i) {
  uv_loop_t* loop = loop_;
  if (rtcp_of_.size() <= i) rtcp_of_.resize(i + 1, nullptr);
  {
    // Owned by sockets_ from the start: a failed bind throws, and the loop's owner then still
    // finds the handle it closes alive.
    sockets_.push_back(std::make_unique<Socket>());
    Socket* l = sockets_.back().get();
    l->owner = this;
    l->listen = i;
    rtcp_of_[i] = l;
    const bool v6 = spec.address.find(':') != std::string::npos;
    const bool mcast = is_multicast_literal(spec.address);
    sockaddr_storage ss{};
    int rc = 0;
    // A multicast group is joined on a socket bound to the wildcard address of its family.
    const std::string bind_addr = mcast ? (v6 ? "::" : "0.0.0.0") : spec.address;
    if (v6)
      rc = uv_ip6_addr(bind_addr.c_str(), spec.port, reinterpret_cast<sockaddr_in6*>(&ss));
    else
      rc = uv_ip4_addr(bind_addr.c_str(), spec.port, reinterpret_cast<sockaddr_in*>(&ss));
    if (rc == 0) rc = uv_udp_init_ex(loop, &l->handle, v6 ? AF_INET6 : AF_INET);
    l->handle.data = l;
    if (rc == 0)
      rc = uv_udp_bind(&l->handle, reinterpret_cast<const sockaddr*>(&ss),
                       mcast ? UV_UDP_REUSEADDR : 0);
    if (rc != 0) {
      throw std::runtime_error(
          "--listen " + spec.describe() + ": cannot bind: " + uv_strerror(rc) +
          (rc == UV_EADDRINUSE ? " (another program uses this port; pick another)" : ""));
    }
    if (mcast) {
      only_joined_groups(&l->handle, v6);
      rc = join(&l->handle, spec);
      if (rc != 0)
        throw std::runtime_error("--listen " + spec.describe() +
                                 ": cannot join group: " + uv_strerror(rc));
    }
    int rcvbuf = 1 << 20;  // absorb bursts while the loop renders
    uv_recv_buffer_size(reinterpret_cast<uv_handle_t*>(&l->handle), &rcvbuf);
    timestamp_datagrams(&l->handle);
    // RTCP on the next port (RFC 3550 §11). Without it, sync and BYE need RTCP muxed on the
    // RTP port (RFC 5761), which is read there too.
    // An SDP's a=rtcp (RFC 3605) may move it.
    const int rtcp_port = spec.rtcp_port ? *spec.rtcp_port : spec.port + 1;
    if (!spec.raw && rtcp_port <= 65535) {
      sockaddr_storage rs = ss;
      if (v6)
        reinterpret_cast<sockaddr_in6*>(&rs)->sin6_port =
            htons(static_cast<std::uint16_t>(rtcp_port));
      else
        reinterpret_cast<sockaddr_in*>(&rs)->sin_port =
            htons(static_cast<std::uint16_t>(rtcp_port));
      sockets_.push_back(std::make_unique<Socket>());
      Socket* r = sockets_.back().get();
      r->owner = this;
      r->listen = i;
      r->rtcp_port = true;
      int r2 = uv_udp_init_ex(loop, &r->handle, v6 ? AF_INET6 : AF_INET);
      r->handle.data = r;
      if (r2 == 0)
        r2 = uv_udp_bind(&r->handle, reinterpret_cast<const sockaddr*>(&rs),
                         mcast ? UV_UDP_REUSEADDR : 0);
      if (r2 == 0 && mcast) {
        only_joined_groups(&r->handle, v6);
        r2 = join(&r->handle, spec);
      }
      if (r2 == 0) {
        rtcp_of_[i] = r;
        timestamp_datagrams(&r->handle);
      } else {
        r->listen = SIZE_MAX;  // closed with the loop, never started
        std::cerr << "rtpnode: warning: --listen " << spec.describe() << ": no RTCP on port "
                  << rtcp_port << ": " << uv_strerror(r2)
                  << " (sync and BYE only with RTCP muxed on the RTP port)\n";
      }
    }
  }
}

void UdpListener::start(DatagramSink sink) {
  if (started_) return;
  started_ = true;
  sink_ = std::move(sink);
  for (auto& s : sockets_) receive(*s);
}

void UdpListener::receive(Socket& s) {
  if (s.listen == SIZE_MAX || s.receiving) return;
  s.receiving = true;
  uv_udp_recv_start(
      &s.handle,
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* sock = static_cast<Socket*>(h->data);
        *buf = uv_buf_init(sock->buf.data(), static_cast<unsigned>(sock->buf.size()));
      },
      [](uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned) {
        if (nread < 0 || addr == nullptr) return;
        auto* sock = static_cast<Socket*>(h->data);
        if (sock->listen == SIZE_MAX) return;  // removed; its close is pending
        sock->owner->deliver(
            *sock,
            {reinterpret_cast<const std::uint8_t*>(buf->base), static_cast<std::size_t>(nread)},
            addr);
      });
}

void UdpListener::add(const ListenSpec& spec, std::size_t listen) {
  const std::size_t before = sockets_.size();
  try {
    open_listen(spec, listen);
  } catch (...) {
    remove(listen);  // what was opened before the failure
    throw;
  }
  if (started_)
    for (std::size_t i = before; i < sockets_.size(); ++i) receive(*sockets_[i]);
}

void UdpListener::remove(std::size_t listen) {
  for (auto& s : sockets_) {
    if (s->listen != listen || s->closing) continue;
    s->listen = SIZE_MAX;
    s->closing = true;
    if (s->handle.loop == nullptr) continue;  // never initialised (a failed add): nothing to close
    if (s->receiving) uv_udp_recv_stop(&s->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&s->handle), [](uv_handle_t* h) {
      auto* sock = static_cast<Socket*>(h->data);
      auto& all = sock->owner->sockets_;
      std::erase_if(all, [sock](const std::unique_ptr<Socket>& p) { return p.get() == sock; });
    });
  }
  if (listen < rtcp_of_.size()) rtcp_of_[listen] = nullptr;
}

void UdpListener::deliver(Socket& s, std::span<const std::uint8_t> bytes, const sockaddr* from) {
  if (s.rtcp_port && bytes.empty()) return;
  sink_(ReceivedDatagram{bytes, from, s.listen, s.rtcp_port, arrival_ns(&s.handle)});
}

bool UdpListener::send_rtcp(std::size_t listen, std::span<const std::uint8_t> bytes,
                            const sockaddr* dest) {
  if (listen >= rtcp_of_.size() || rtcp_of_[listen] == nullptr) return false;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(const_cast<std::uint8_t*>(bytes.data())),
                             static_cast<unsigned>(bytes.size()));
  return uv_udp_try_send(&rtcp_of_[listen]->handle, &buf, 1, dest) >= 0;
}

SapReceiver::SapReceiver(uv_loop_t* loop, const std::vector<ListenSpec>& addresses, Sink sink)
    : sink_(std::move(sink)) {
  std::string last_error;
  for (const ListenSpec& a : addresses) {
    const bool v6 = a.address.find(':') != std::string::npos;
    const bool mcast = is_multicast_literal(a.address);
    const std::string bind_addr = mcast ? (v6 ? "::" : "0.0.0.0") : a.address;
    sockaddr_storage ss{};
    int rc = v6 ? uv_ip6_addr(bind_addr.c_str(), a.port, reinterpret_cast<sockaddr_in6*>(&ss))
                : uv_ip4_addr(bind_addr.c_str(), a.port, reinterpret_cast<sockaddr_in*>(&ss));
    if (rc != 0) throw std::runtime_error("--sap " + a.describe() + ": " + uv_strerror(rc));
    sockets_.push_back(std::make_unique<Socket>());
    Socket* s = sockets_.back().get();
    s->owner = this;
    rc = uv_udp_init_ex(loop, &s->handle, v6 ? AF_INET6 : AF_INET);
    if (rc != 0) throw std::runtime_error("--sap " + a.describe() + ": " + uv_strerror(rc));
    s->handle.data = s;
    rc = uv_udp_bind(&s->handle, reinterpret_cast<const sockaddr*>(&ss),
                     mcast ? UV_UDP_REUSEADDR : 0);
    if (rc == 0 && mcast) {
      only_joined_groups(&s->handle, v6);
      rc = uv_udp_set_membership(&s->handle, a.address.c_str(), nullptr, UV_JOIN_GROUP);
      if (rc != 0) {
        std::cerr << "rtpnode: warning: --sap " << a.describe()
                  << ": cannot join the group: " << uv_strerror(rc)
                  << " (no multicast route? announcements to it are not heard)\n";
        last_error = a.describe() + ": " + uv_strerror(rc);
        continue;  // closed with the loop
      }
    }
    if (rc != 0)
      throw std::runtime_error("--sap " + a.describe() + ": cannot bind: " + uv_strerror(rc));
    timestamp_datagrams(&s->handle);
    uv_udp_recv_start(
        &s->handle,
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* sock = static_cast<Socket*>(h->data);
          *buf = uv_buf_init(sock->buf.data(), static_cast<unsigned>(sock->buf.size()));
        },
        [](uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned) {
          if (nread <= 0 || addr == nullptr) return;
          auto* sock = static_cast<Socket*>(h->data);
          sock->owner->sink_(
              {reinterpret_cast<const std::uint8_t*>(buf->base), static_cast<std::size_t>(nread)},
              addr, arrival_ns(h));
        });
    last_error.clear();
    receiving_any_ = true;
  }
  if (!receiving_any_)
    throw std::runtime_error("--sap: no announcement address can be received (" + last_error + ")");
}

}  // namespace rtpnode
