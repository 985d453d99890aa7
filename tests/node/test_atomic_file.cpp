// write_file_atomically: the stats file's writer (issue #16 finding 7).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "node/atomic_file.hpp"

using namespace rtpnode;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "rtpnode-atomic-XXXXXX").string();
    path = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST(AtomicFile, ReplacesTheFileAndLeavesNoTemporaryBehind) {
  TempDir d;
  const fs::path target = d.path / "stats.json";
  ASSERT_EQ(write_file_atomically(target, "one\n"), "");
  ASSERT_EQ(write_file_atomically(target, "two\n"), "");
  EXPECT_EQ(slurp(target), "two\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()), 1);
  struct stat st {};
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(AtomicFile, APlantedSymlinkAtTheOldTemporaryNameIsNeverFollowed) {
  TempDir d;
  const fs::path victim = d.path / "victim";
  { std::ofstream(victim) << "precious\n"; }
  fs::create_symlink(victim, d.path / "stats.json.tmp");  // the name the old code used
  fs::create_symlink(victim, d.path / ".stats.json.tmp");
  ASSERT_EQ(write_file_atomically(d.path / "stats.json", "{}\n"), "");
  EXPECT_EQ(slurp(victim), "precious\n");
  EXPECT_EQ(slurp(d.path / "stats.json"), "{}\n");
  EXPECT_TRUE(fs::is_symlink(d.path / "stats.json.tmp"));
}

TEST(AtomicFile, FailureNamesTheStepAndThePathAndLeavesNothing) {
  TempDir d;
  const std::string missing = (d.path / "no-such-dir" / "stats.json").string();
  const std::string e = write_file_atomically(missing, "x");
  EXPECT_NE(e.find("cannot create a temporary file"), std::string::npos) << e;
  EXPECT_NE(e.find(missing), std::string::npos) << e;
  EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;
  // A directory where the file should be: rename fails, and the temporary file is removed.
  fs::create_directory(d.path / "stats.json");
  fs::create_directory(d.path / "stats.json" / "x");  // not empty: rename over it fails
  const std::string e2 = write_file_atomically(d.path / "stats.json", "x");
  EXPECT_NE(e2.find("cannot rename"), std::string::npos) << e2;
  EXPECT_EQ(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()), 1);
}
