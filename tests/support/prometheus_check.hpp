// A line-by-line checker of the Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): every family has exactly one
// # HELP and one # TYPE line before its samples, names and label names are valid, counters end
// in _total, histogram buckets are cumulative and end with le="+Inf" equal to _count, values
// parse as floats, no series appears twice. Returns the problems found (empty: valid) and the
// samples, keyed by "name{labels}" as written.
#pragma once

#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace rtpnode::test {

struct PrometheusCheck {
  std::vector<std::string> problems;
  std::map<std::string, double> samples;     ///< "name{labels}" -> value
  std::map<std::string, std::string> types;  ///< family -> counter|gauge|histogram|...
};

inline bool parse_prom_value(const std::string& v, double& out) {
  if (v == "+Inf") {
    out = HUGE_VAL;
    return true;
  }
  if (v == "-Inf") {
    out = -HUGE_VAL;
    return true;
  }
  if (v == "NaN") {
    out = NAN;
    return true;
  }
  char* end = nullptr;
  out = std::strtod(v.c_str(), &end);
  return !v.empty() && end == v.c_str() + v.size();
}

inline PrometheusCheck check_prometheus(const std::string& text) {
  PrometheusCheck r;
  const std::regex help_re(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$)");
  const std::regex type_re(
      R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  const std::regex sample_re(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
  const std::regex label_re(R"re(^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$))re");
  std::set<std::string> helped, typed, seen_family_samples;
  std::string current;  // family of the last # TYPE
  std::map<std::string, double> last_bucket;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  auto problem = [&](const std::string& what) {
    r.problems.push_back("line " + std::to_string(n) + ": " + what + ": " + line);
  };
  if (!text.empty() && text.back() != '\n')
    r.problems.push_back("the text does not end with a newline");
  while (std::getline(in, line)) {
    ++n;
    std::smatch m;
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0) {
      if (!std::regex_match(line, m, help_re)) {
        problem("bad HELP");
        continue;
      }
      if (!helped.insert(m[1]).second) problem("second HELP for the family");
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      if (!std::regex_match(line, m, type_re)) {
        problem("bad TYPE");
        continue;
      }
      if (!typed.insert(m[1]).second) problem("second TYPE for the family");
      if (seen_family_samples.count(m[1])) problem("TYPE after the family's samples");
      if (!helped.count(m[1])) problem("TYPE without a HELP before it");
      current = m[1];
      r.types[current] = m[2];
      if (m[2] == "counter" && current.size() < 6) problem("counter name too short");
      if (m[2] == "counter" && current.substr(current.size() - 6) != "_total")
        problem("counter not ending in _total");
      continue;
    }
    if (line[0] == '#') continue;  // other comments are allowed
    if (!std::regex_match(line, m, sample_re)) {
      problem("not a sample line");
      continue;
    }
    const std::string name = m[1], labels = m[3], value = m[4];
    std::string family = name;
    const std::string type = r.types.count(current) ? r.types[current] : "";
    if (type == "histogram")
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s = suffix;
        if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
            name.substr(0, name.size() - s.size()) == current)
          family = current;
      }
    if (family != current)
      problem("sample of family '" + family + "' outside its TYPE block ('" + current + "')");
    seen_family_samples.insert(family);
    std::string rest = labels;
    std::set<std::string> label_names;
    std::string le;
    while (!rest.empty()) {
      std::smatch lm;
      if (!std::regex_search(rest, lm, label_re)) {
        problem("bad label syntax");
        break;
      }
      if (!label_names.insert(lm[1]).second) problem("label repeated");
      if (lm[1] == "le") le = lm[2];
      rest = lm.suffix();
    }
    double v = 0;
    if (!parse_prom_value(value, v)) problem("value is not a float");
    const std::string key = name + (labels.empty() ? "" : "{" + labels + "}");
    if (!r.samples.emplace(key, v).second) problem("series repeated");
    if (type == "counter" && v < 0) problem("negative counter");
    if (type == "histogram" && name == current + "_bucket") {
      if (le.empty()) problem("bucket without le");
      if (!last_bucket.empty() && v < last_bucket.rbegin()->second)
        problem("buckets not cumulative");
      last_bucket[le] = v;
    }
    if (type == "histogram" && name == current + "_count") {
      if (!last_bucket.count("+Inf"))
        problem("histogram without le=\"+Inf\"");
      else if (last_bucket["+Inf"] != v)
        problem("le=\"+Inf\" bucket differs from _count");
      last_bucket.clear();
    }
  }
  for (const auto& f : typed)
    if (!seen_family_samples.count(f) && r.types[f] != "gauge" && r.types[f] != "counter")
      r.problems.push_back("family " + f + " has no samples");
  return r;
}

}  // namespace rtpnode::test
