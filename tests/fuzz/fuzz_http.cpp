// libFuzzer target: HTTP request handling. A real HttpServer (libmicrohttpd in external epoll
// mode) on a libuv loop that this thread runs; each input is sent as the bytes of one loopback
// TCP connection (then half-closed), and the loop runs until the server answers or closes, at
// most a bounded number of turns. Covers request parsing, the body limit, the Host/Origin/token
// checks on state-changing requests and the slot eviction, with a handler that echoes the query.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "node/http_server.hpp"

using namespace rtpnode;

namespace {

struct Server {
  uv_loop_t loop{};
  std::unique_ptr<HttpServer> http;
  Server() {
    uv_loop_init(&loop);
    HttpServer::Options o;
    o.idle_timeout_s = 1;
    o.max_connections = 8;
    o.bearer_token = "token";
    http = std::make_unique<HttpServer>(&loop, o, [](const HttpRequest& r) {
      HttpResponse resp;
      resp.body = r.method + " " + r.path + "\n";
      for (const auto& [k, v] : r.query) resp.body += k + "=" + v + "\n";
      return resp;
    });
  }
};

Server& server() {
  static Server s;  // one for the whole run: the handles stay on its loop
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Server& s = server();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(s.http->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return 0;
  }
  for (std::size_t off = 0; off < size;) {  // a loopback socket buffer holds the whole input
    const ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  // Loopback delivers at once, so the loop's non-blocking turns see every step: run until the
  // server closes, or nothing has moved for 50 turns (a kept-alive connection after its answer).
  char buf[4096];
  for (int turn = 0, idle = 0; turn < 400 && idle < 50; ++turn) {
    uv_run(&s.loop, UV_RUN_NOWAIT);
    const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) break;  // the server closed: done
    if (n > 0) {
      idle = 0;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      ++idle;
    } else {
      break;
    }
  }
  close(fd);
  uv_run(&s.loop, UV_RUN_NOWAIT);  // let the server see the close
  return 0;
}
