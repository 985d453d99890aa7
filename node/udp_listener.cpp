#include "node/udp_listener.hpp"

#include <arpa/inet.h>

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

}  // namespace

UdpListener::UdpListener(uv_loop_t* loop, const std::vector<ListenSpec>& specs) {
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const ListenSpec& spec = specs[i];
    // Owned by sockets_ from the start: a failed bind throws, and the loop's owner then still
    // finds the handle it closes alive.
    sockets_.push_back(std::make_unique<Socket>());
    Socket* l = sockets_.back().get();
    l->owner = this;
    l->listen = i;
    rtcp_of_.push_back(l);
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
      if (r2 == 0 && mcast) r2 = join(&r->handle, spec);
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
  for (auto& s : sockets_) {
    if (s->listen == SIZE_MAX) continue;
    uv_udp_recv_start(
        &s->handle,
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto* sock = static_cast<Socket*>(h->data);
          *buf = uv_buf_init(sock->buf.data(), static_cast<unsigned>(sock->buf.size()));
        },
        [](uv_udp_t* h, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr, unsigned) {
          if (nread < 0 || addr == nullptr) return;
          auto* sock = static_cast<Socket*>(h->data);
          sock->owner->deliver(
              *sock,
              {reinterpret_cast<const std::uint8_t*>(buf->base), static_cast<std::size_t>(nread)},
              addr);
        });
  }
}

void UdpListener::deliver(Socket& s, std::span<const std::uint8_t> bytes, const sockaddr* from) {
  if (s.rtcp_port && bytes.empty()) return;
  sink_(ReceivedDatagram{bytes, from, s.listen, s.rtcp_port, arrival_ns(&s.handle)});
}

bool UdpListener::send_rtcp(std::size_t listen, std::span<const std::uint8_t> bytes,
                            const sockaddr* dest) {
  if (listen >= rtcp_of_.size()) return false;
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(const_cast<std::uint8_t*>(bytes.data())),
                             static_cast<unsigned>(bytes.size()));
  return uv_udp_try_send(&rtcp_of_[listen]->handle, &buf, 1, dest) >= 0;
}

}  // namespace rtpnode
