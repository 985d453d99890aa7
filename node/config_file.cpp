#include "node/config_file.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <sstream>

namespace rtpnode {

namespace {

std::string where(const std::string& path, const toml::source_region& r) {
  return path + ":" + std::to_string(r.begin.line);
}

/// A scalar as the command line would give it; nullopt for what no flag takes.
std::optional<std::string> scalar_text(const toml::node& n) {
  if (const auto* s = n.as_string()) return s->get();
  if (const auto* i = n.as_integer()) return std::to_string(i->get());
  if (const auto* f = n.as_floating_point()) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, f->get());
    return std::string(buf, r.ptr);
  }
  if (const auto* b = n.as_boolean()) return b->get() ? "true" : "false";
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<ConfigFileEntry>> read_config_file(const std::string& path,
                                                             std::string& error) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    if (e.source().begin.line == 0)
      msg << path << ": " << e.description();
    else
      msg << where(path, e.source()) << ": " << e.description();
    error = msg.str();
    return std::nullopt;
  }
  std::vector<ConfigFileEntry> entries;
  for (const auto& [key, node] : table) {
    ConfigFileEntry e;
    e.key = std::string(key.str());
    e.line = static_cast<std::uint32_t>(key.source().begin.line);
    if (const auto* array = node.as_array()) {
      for (const toml::node& element : *array) {
        auto text = scalar_text(element);
        if (!text) {
          error = where(path, element.source()) + ": " + e.key +
                  ": an array element must be a string, number or boolean";
          return std::nullopt;
        }
        e.values.push_back(std::move(*text));
      }
    } else if (auto text = scalar_text(node)) {
      e.values.push_back(std::move(*text));
    } else {
      error = where(path, node.source()) + ": " + e.key +
              ": the value must be a string, number, boolean or an array of them (a flag's value)";
      return std::nullopt;
    }
    entries.push_back(std::move(e));
  }
  // toml++ iterates keys in its own order: give them in the file's.
  std::sort(entries.begin(), entries.end(),
            [](const ConfigFileEntry& a, const ConfigFileEntry& b) { return a.line < b.line; });
  return entries;
}

}  // namespace rtpnode
