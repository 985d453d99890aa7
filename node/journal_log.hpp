// stderr in the form systemd's journal reads (issue #15): when stderr is connected to the journal
// (JOURNAL_STREAM names its device and inode, systemd.exec(5)), every line gets a syslog
// priority prefix (sd-daemon(3): "<3>" error, "<4>" warning, "<6>" info), chosen from what the
// line says. rtpnode already writes one line per event; this only adds the prefix.
//
// Thread: main installs it before anything logs; afterwards only the loop thread writes to
// std::cerr (the audio callback never logs).
#pragma once

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <streambuf>
#include <string>

namespace rtpnode {

/// True when fd 2 is the journal stream systemd set up for this service.
inline bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  if (js == nullptr || fstat(2, &st) != 0) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  return dev == static_cast<unsigned long long>(st.st_dev) &&
         ino == static_cast<unsigned long long>(st.st_ino);
}

/// The priority prefix for one line of rtpnode's stderr.
inline const char* journal_priority(const std::string& line) {
  if (line.find("warning") != std::string::npos) return "<4>";
  for (const char* word : {"error", "cannot", "could not", "failed", "lost", "stopped", "stalled",
                           "bad ", "unknown", "expected", "invalid", "denied", "in use"})
    if (line.find(word) != std::string::npos) return "<3>";
  return "<6>";
}

/// A streambuf that collects lines and writes each, prefixed, to `out`.
class JournalLineBuf final : public std::streambuf {
 public:
  explicit JournalLineBuf(std::streambuf* out) : out_(out) {}
  ~JournalLineBuf() override {
    if (!line_.empty()) {
      line_ += '\n';
      flush_line();
    }
  }

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return 0;
    line_ += static_cast<char>(c);
    if (c == '\n') flush_line();
    return c;
  }
  // std::cerr flushes after every insertion (unitbuf): a partial line waits for its end.
  int sync() override { return 0; }

 private:
  void flush_line() {
    const std::string prefixed = journal_priority(line_) + line_;
    out_->sputn(prefixed.data(), static_cast<std::streamsize>(prefixed.size()));
    out_->pubsync();
    line_.clear();
  }
  std::streambuf* out_;
  std::string line_;
};

}  // namespace rtpnode
