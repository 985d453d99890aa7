// Replacing a file atomically and safely, for the stats file that monitoring reads while the
// node rewrites it (issue #16 finding 7: a fixed "FILE.tmp" opened without O_EXCL let a planted
// symlink make rtpnode, often root, overwrite another file).
#pragma once

#include <string>
#include <string_view>

namespace rtpnode {

/// Thread: any (blocking file I/O: the loop thread calls it once per stats interval).
/// Writes `contents` to a new temporary file created exclusively (mkstemp: O_CREAT|O_EXCL, so a
/// planted file or symlink is never opened) in the directory of `path`, fsyncs it, sets mode
/// 0644, closes it (checked) and renames it over `path`, so a reader sees the old file or the
/// new one, never half of one. Returns "" on success, else a message naming the failed step,
/// the path and errno's text; the temporary file is removed then.
[[nodiscard]] std::string write_file_atomically(const std::string& path, std::string_view contents);

}  // namespace rtpnode
