// A small HTTP/1.1 server on the node's libuv loop (issue #7 metrics and stats, issue #4 control).
// HTTP itself is GNU libmicrohttpd's, run without threads of its own ("external epoll" mode):
// its epoll descriptor is watched by a uv_poll handle and its timeouts by a uv_timer, so every
// request is parsed and answered on the loop thread, between packets, and never blocks it.
// Protection is libmicrohttpd's: a request (line + headers) larger than max_request_bytes is
// answered 431/413, garbage 400, an idle or half-open connection is closed after
// idle_timeout_s, and at most max_connections are open at once. Ours, on top (issue #16):
//  - when all but one connection slot are taken, every connection that has not sent a whole
//    request yet is given a 1 s timeout, so a legitimate client finds a slot within a second;
//  - a request that changes state (any method but GET and HEAD) must name this server in its
//    Host header (an IP literal or "localhost"; the bound address when bound to one), must not
//    come from another origin (an Origin header must be http://HOST), and must carry
//    "Authorization: Bearer TOKEN" when a token is set. This stops a web page in a local
//    browser, directly or through DNS rebinding, from driving the control endpoint (403/401).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <string>

#include <uv.h>

struct MHD_Daemon;
struct MHD_Connection;
struct sockaddr;

namespace rtpnode {

struct HttpRequest {
  std::string method;                        ///< "GET", "POST", ...
  std::string path;                          ///< "/metrics" (query string removed)
  std::map<std::string, std::string> query;  ///< decoded query arguments
  std::string peer;                          ///< client address "ip:port"
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

/// Answers one request. Thread: loop. Must not throw (an exception is answered with 500).
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";  ///< IPv4 or IPv6 literal to bind
    std::uint16_t port = 0;             ///< 0: any free port (see port())
    /// false: connections from addresses other than loopback (127.0.0.0/8, ::1) are refused at
    /// accept, whatever address is bound.
    bool allow_remote = false;
    unsigned idle_timeout_s = 5;           ///< closes connections idle this long (half-open ones)
    std::size_t max_request_bytes = 8192;  ///< request line + headers (+ body) per connection
    unsigned max_connections = 32;
    /// Non-empty: state-changing requests need "Authorization: Bearer <token>" (--http-token-file).
    std::string bearer_token;
  };

  /// Thread: loop. Binds and starts serving on `loop`. Throws std::runtime_error with the reason
  /// (bad address, port in use).
  HttpServer(uv_loop_t* loop, Options opts, HttpHandler handler);
  /// Thread: loop. Its uv handles must already be closed (the node closes every handle of its
  /// loop before destroying the server).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The bound port.
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// Requests answered (any status).
  [[nodiscard]] std::uint64_t requests() const noexcept { return requests_; }
  /// Connections refused because the client is not local.
  [[nodiscard]] std::uint64_t refused() const noexcept { return refused_; }
  /// State-changing requests refused: foreign Host, cross-origin, or no/wrong token (403/401).
  [[nodiscard]] std::uint64_t forbidden() const noexcept { return forbidden_; }
  /// Idle connections cut short to keep a slot free.
  [[nodiscard]] std::uint64_t evicted() const noexcept { return evicted_; }

 private:
  friend struct HttpCallbacks;  ///< libmicrohttpd's callbacks (http_server.cpp)
  /// Runs libmicrohttpd's pending work and re-arms the timer from its next timeout.
  void run_once();

  Options opts_;
  HttpHandler handler_;
  MHD_Daemon* daemon_ = nullptr;
  uv_poll_t poll_{};
  uv_timer_t timer_{};
  std::uint16_t port_ = 0;
  std::uint64_t requests_ = 0;
  std::uint64_t refused_ = 0;
  std::uint64_t forbidden_ = 0;
  std::uint64_t evicted_ = 0;
  /// Open connections, oldest first (libmicrohttpd's connection notifications).
  struct Connection {
    MHD_Connection* c = nullptr;
    bool requested = false;  ///< a whole request header arrived (not idle/half-open)
    bool evicting = false;   ///< its timeout was already cut
  };
  std::list<Connection> connections_;
};

}  // namespace rtpnode
