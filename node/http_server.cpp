#include "node/http_server.hpp"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "node/net_address.hpp"

namespace rtpnode {

namespace {

std::string peer_name(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa == nullptr) return "?";
  if (sa->sa_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(sa);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(sa);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  return "?";
}

/// Host part of a Host header value: "127.0.0.1:8080" -> "127.0.0.1", "[::1]:80" -> "::1".
std::string host_part(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    const auto close = h.find(']');
    return close == std::string_view::npos ? std::string() : std::string(h.substr(1, close - 1));
  }
  const auto colon = h.find(':');
  return std::string(h.substr(0, colon));
}

bool is_ip_literal(const std::string& host) {
  in6_addr a6{};
  in_addr a4{};
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

/// Compares in time independent of where the strings differ.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

/// Per-request state: body bytes seen (bodies are not used; their size is bounded).
struct RequestState {
  std::size_t body_bytes = 0;
};

MHD_Result queue(MHD_Connection* c, const HttpResponse& r) {
  MHD_Response* resp = MHD_create_response_from_buffer(
      r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
  if (resp == nullptr) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", r.content_type.c_str());
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  const MHD_Result rc = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
  MHD_destroy_response(resp);
  return rc;
}

}  // namespace

struct HttpCallbacks {
  static MHD_Result on_accept(void* cls, const sockaddr* addr, socklen_t) {
    auto* self = static_cast<HttpServer*>(cls);
    if (!self->opts_.allow_remote && !(addr != nullptr && is_loopback(addr))) {
      ++self->refused_;
      return MHD_NO;
    }
    // All but one slot taken: every connection that has not sent a request yet gets 1 s to
    // send one (libmicrohttpd closes connections beyond its limit at once, so slots must free
    // before the next legitimate client comes). Clients that made a request keep their time.
    if (self->connections_.size() + 2 >= self->opts_.max_connections) {
      for (HttpServer::Connection& k : self->connections_) {
        if (k.requested || k.evicting) continue;
        MHD_set_connection_option(k.c, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
        k.evicting = true;
        ++self->evicted_;
      }
    }
    return MHD_YES;
  }

  static void on_connection(void* cls, MHD_Connection* c, void** socket_ctx,
                            MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<HttpServer*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      self->connections_.push_back({c, false, false});
      *socket_ctx =
          new std::list<HttpServer::Connection>::iterator(std::prev(self->connections_.end()));
    } else if (*socket_ctx != nullptr) {
      auto* it = static_cast<std::list<HttpServer::Connection>::iterator*>(*socket_ctx);
      self->connections_.erase(*it);
      delete it;
      *socket_ctx = nullptr;
    }
  }

  /// Why a state-changing request is refused, or "" (see the header: Host, Origin, token).
  static HttpResponse check_write(const HttpServer& self, MHD_Connection* c) {
    const char* host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const std::string h = host ? host_part(host) : "";
    const std::string& bound = self.opts_.address;
    const bool wildcard = bound == "0.0.0.0" || bound == "::";
    const bool loopback_bound = bound.rfind("127.", 0) == 0 || bound == "::1";
    const bool host_ok = (h == "localhost" && (loopback_bound || wildcard)) ||
                         (is_ip_literal(h) && (wildcard || h == bound));
    if (!host_ok)
      return {403, "text/plain; charset=utf-8",
              "Host '" + std::string(host ? host : "") +
                  "' is not this server's address: control needs Host " +
                  (wildcard ? std::string("set to an IP address") : bound) + "\n"};
    if (const char* origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
        origin != nullptr && std::string(origin) != "http://" + std::string(host))
      return {403, "text/plain; charset=utf-8",
              "cross-origin control request refused (Origin " + std::string(origin) + ")\n"};
    if (!self.opts_.bearer_token.empty()) {
      const char* auth =
          MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
      if (auth == nullptr || !same_secret(auth, "Bearer " + self.opts_.bearer_token))
        return {401, "text/plain; charset=utf-8",
                "control needs Authorization: Bearer <the --http-token-file token>\n"};
    }
    return {0, "", ""};
  }

  static MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method,
                               const char*, const char*, std::size_t* upload_data_size,
                               void** req_cls) {
    auto* self = static_cast<HttpServer*>(cls);
    if (*req_cls == nullptr) {  // headers complete; the body (if any) follows in later calls
      *req_cls = new RequestState;
      if (const MHD_ConnectionInfo* si =
              MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
          si != nullptr && si->socket_context != nullptr)
        (*static_cast<std::list<HttpServer::Connection>::iterator*>(si->socket_context))
            ->requested = true;
      const std::string m = method ? method : "";
      if (m != "GET" && m != "HEAD") {
        HttpResponse refusal = check_write(*self, c);
        if (refusal.status != 0) {
          ++self->requests_;
          ++self->forbidden_;
          return queue(c, refusal);
        }
      }
      // An announced body beyond the limit is refused before any of it is read.
      const char* length =
          MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
      if (length != nullptr && std::strtoull(length, nullptr, 10) > self->opts_.max_request_bytes) {
        ++self->requests_;
        return queue(c, {413, "text/plain; charset=utf-8", "request body too large\n"});
      }
      return MHD_YES;
    }
    auto* st = static_cast<RequestState*>(*req_cls);
    if (*upload_data_size != 0) {
      st->body_bytes += *upload_data_size;
      *upload_data_size = 0;
      if (st->body_bytes > self->opts_.max_request_bytes) {
        ++self->requests_;
        return queue(c, {413, "text/plain; charset=utf-8", "request body too large\n"});
      }
      return MHD_YES;
    }
    HttpRequest req;
    req.method = method ? method : "";
    req.path = url ? url : "";
    if (const MHD_ConnectionInfo* ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS))
      req.peer = peer_name(ci->client_addr);
    MHD_get_connection_values(
        c, MHD_GET_ARGUMENT_KIND,
        [](void* q, MHD_ValueKind, const char* key, const char* value) -> MHD_Result {
          if (key != nullptr)
            (*static_cast<std::map<std::string, std::string>*>(q))[key] = value ? value : "";
          return MHD_YES;
        },
        &req.query);
    HttpResponse resp;
    try {
      resp = self->handler_(req);
    } catch (const std::exception& e) {
      resp = {500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"};
    }
    ++self->requests_;
    return queue(c, resp);
  }

  static void on_completed(void*, MHD_Connection*, void** req_cls, MHD_RequestTerminationCode) {
    delete static_cast<RequestState*>(*req_cls);
    *req_cls = nullptr;
  }
};

HttpServer::HttpServer(uv_loop_t* loop, Options opts, HttpHandler handler)
    : opts_(std::move(opts)), handler_(std::move(handler)) {
  sockaddr_storage ss{};
  const bool v6 = opts_.address.find(':') != std::string::npos;
  int rc = v6 ? uv_ip6_addr(opts_.address.c_str(), opts_.port, reinterpret_cast<sockaddr_in6*>(&ss))
              : uv_ip4_addr(opts_.address.c_str(), opts_.port, reinterpret_cast<sockaddr_in*>(&ss));
  if (rc != 0) throw std::runtime_error("--http " + opts_.address + ": not an IP address");
  unsigned flags = MHD_USE_EPOLL;  // external polling: no thread of its own
  if (v6) flags |= MHD_USE_IPv6;
  daemon_ = MHD_start_daemon(
      flags, opts_.port, &HttpCallbacks::on_accept, this, &HttpCallbacks::on_request, this,
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&ss), MHD_OPTION_CONNECTION_TIMEOUT,
      opts_.idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, opts_.max_connections,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, opts_.max_request_bytes, MHD_OPTION_NOTIFY_COMPLETED,
      &HttpCallbacks::on_completed, nullptr, MHD_OPTION_NOTIFY_CONNECTION,
      &HttpCallbacks::on_connection, this, MHD_OPTION_END);
  if (daemon_ == nullptr)
    throw std::runtime_error("--http " + opts_.address + ":" + std::to_string(opts_.port) +
                             ": cannot listen (port in use, or address not on this host)");
  const MHD_DaemonInfo* pi = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
  port_ = pi ? pi->port : opts_.port;
  const MHD_DaemonInfo* ei = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_EPOLL_FD);
  if (ei == nullptr) {
    MHD_stop_daemon(daemon_);
    throw std::runtime_error("--http: libmicrohttpd has no epoll descriptor");
  }
  uv_poll_init(loop, &poll_, ei->epoll_fd);
  poll_.data = this;
  uv_poll_start(&poll_, UV_READABLE,
                [](uv_poll_t* h, int, int) { static_cast<HttpServer*>(h->data)->run_once(); });
  uv_timer_init(loop, &timer_);
  timer_.data = this;
  run_once();
}

HttpServer::~HttpServer() {
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
}

void HttpServer::run_once() {
  MHD_run(daemon_);
  MHD_UNSIGNED_LONG_LONG ms = 1000;
  if (MHD_get_timeout(daemon_, &ms) != MHD_YES) ms = 1000;  // no connection waits on a timeout
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_))) return;
  uv_timer_start(
      &timer_, [](uv_timer_t* t) { static_cast<HttpServer*>(t->data)->run_once(); },
      std::min<MHD_UNSIGNED_LONG_LONG>(ms, 1000), 0);
}

}  // namespace rtpnode
