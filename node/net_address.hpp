// Small helpers on socket addresses (IPv4 and IPv6), shared by the node's sockets and RTCP.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace rtpnode {

/// Bytes of `sa` that matter: sizeof(sockaddr_in) for AF_INET, sizeof(sockaddr_in6) otherwise.
/// Any thread; pure.
[[nodiscard]] inline std::size_t sockaddr_length(const sockaddr* sa) noexcept {
  return sa->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

/// True when `a` and `b` name the same host (family and IP address; ports are not compared).
/// RFC 3550 §8.2 ties a source's RTCP to its RTP transport address; the RTCP port of a sender
/// is often an ephemeral one (rtpsend, GStreamer's udpsink), so the host is what is checked.
/// Any thread; pure.
[[nodiscard]] inline bool same_host(const sockaddr* a, const sockaddr* b) noexcept {
  if (a->sa_family != b->sa_family) return false;
  if (a->sa_family == AF_INET)
    return reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr ==
           reinterpret_cast<const sockaddr_in*>(b)->sin_addr.s_addr;
  if (a->sa_family == AF_INET6)
    return std::memcmp(&reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr,
                       &reinterpret_cast<const sockaddr_in6*>(b)->sin6_addr, sizeof(in6_addr)) == 0;
  return false;
}

/// True when `sa` is a loopback address: 127.0.0.0/8, ::1 or an IPv4-mapped 127.x. Any thread;
/// pure.
[[nodiscard]] inline bool is_loopback(const sockaddr* sa) noexcept {
  if (sa->sa_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
    if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) return a->sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

/// True when `addr` is an IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast literal. Any thread.
[[nodiscard]] bool is_multicast_literal(const std::string& addr) noexcept;

}  // namespace rtpnode
