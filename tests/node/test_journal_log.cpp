// stderr for the journal (issue #15): one priority prefix per line, whatever pieces the line was
// written in and however often the stream flushes.
#include <gtest/gtest.h>

#include <sstream>

#include "node/journal_log.hpp"

using namespace rtpnode;

TEST(JournalLog, EveryLineGetsOnePriorityFromWhatItSays) {
  std::ostringstream sink;
  {
    JournalLineBuf buf(sink.rdbuf());
    std::ostream out(&buf);
    out << std::unitbuf;  // as std::cerr: a flush after every insertion
    out << "rtpnode: "
        << "playing on " << 42 << "\n";
    out << "rtpnode: warning: RTCP from another host (counted)\n";
    out << "rtpnode: audio device stopped: no callback for 500 ms\n";
    out << "rtpnode: --listen: bad listen address\n";
    out << "unterminated";
  }
  EXPECT_EQ(sink.str(),
            "<6>rtpnode: playing on 42\n"
            "<4>rtpnode: warning: RTCP from another host (counted)\n"
            "<3>rtpnode: audio device stopped: no callback for 500 ms\n"
            "<3>rtpnode: --listen: bad listen address\n"
            "<6>unterminated\n");
}

TEST(JournalLog, OnlyTheJournalStreamGetsPrefixes) {
  setenv("JOURNAL_STREAM", "1:2", 1);  // not this process's stderr
  EXPECT_FALSE(stderr_is_journal());
  unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderr_is_journal());
}
