// rtpnode's configuration file (issue #15): TOML (toml.io v1.0, read with toml++), one key per
// command-line flag -- the flag's name without "--" -- whose value is what the flag takes:
//
//   listen = ["0.0.0.0:5004", "[ff02::1]:5006"]   # a repeatable flag: an array (or one value)
//   latency = "auto"
//   offset = ["port:5006=+12.5ms"]
//   max-sources = 8                              # numbers as numbers (or as strings)
//   http-allow-remote = true                     # a flag without a value: a boolean
//
// Flags on the command line override the file (a repeatable flag given there replaces the
// file's values). This file only reads and converts; main.cpp hands the values to the same
// option objects the command line fills, so every check is the flag's own.
//
// Thread: main (startup, SIGHUP re-read).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rtpnode {

/// One key of a config file.
struct ConfigFileEntry {
  std::string key;                  ///< the flag's name without "--"
  std::vector<std::string> values;  ///< as the command line gives them (one per array element)
  std::uint32_t line = 0;           ///< 1-based line of the key in the file
};

/// Reads `path`. Returns std::nullopt with `error` set to "PATH:LINE: reason" (or "PATH: reason"
/// when the file cannot be read) for TOML syntax errors and for values that no flag takes
/// (tables, nested arrays, dates). Strings are taken as they are; integers and floats in their
/// shortest decimal form; booleans as "true"/"false".
std::optional<std::vector<ConfigFileEntry>> read_config_file(const std::string& path,
                                                             std::string& error);

}  // namespace rtpnode
