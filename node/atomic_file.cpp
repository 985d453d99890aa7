#include "node/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace rtpnode {

std::string write_file_atomically(const std::string& path, std::string_view contents) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmpl = (slash == std::string::npos ? std::string() : dir) + "." + base + ".XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0)
    return "cannot create a temporary file in " + dir + " for " + path + ": " +
           std::strerror(errno);
  auto fail = [&](const char* step) {
    const int err = errno;
    unlink(name.data());
    return std::string("cannot ") + step + " " + path + ": " + std::strerror(err);
  };
  for (std::size_t done = 0; done < contents.size();) {
    const ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string e = fail("write");
      close(fd);
      return e;
    }
    done += static_cast<std::size_t>(n);
  }
  if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
    const std::string e = fail("sync");
    close(fd);
    return e;
  }
  if (close(fd) != 0) return fail("close");
  if (std::rename(name.data(), path.c_str()) != 0) return fail("rename a temporary file over");
  return {};
}

}  // namespace rtpnode
