// Splitting the line-based text of SDP (RFC 8866 §5) and SIP (RFC 3261 §7) messages: one
// place for the helpers both parsers use. Any thread; pure.
#pragma once

#include <string_view>
#include <vector>

namespace rtpnode {

/// `s` without leading blanks (space, tab) and trailing blanks or CR.
inline std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

/// The blank-separated words of `s` (views into it).
inline std::vector<std::string_view> blank_separated_words(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    s = trim_blanks(s);
    if (s.empty()) break;
    const auto sp = s.find_first_of(" \t");
    out.push_back(s.substr(0, sp));
    if (sp == std::string_view::npos) break;
    s.remove_prefix(sp);
  }
  return out;
}

}  // namespace rtpnode
