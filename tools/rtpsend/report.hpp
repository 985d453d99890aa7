// rtpsend's summary: one stderr line with packets, bytes and the send-time error (p50, p99,
// max), one with the injected faults, and --stats-json (per stream and in total).
#pragma once

#include <memory>
#include <vector>

#include "tools/rtpsend/options.hpp"
#include "tools/rtpsend/stream.hpp"

namespace rtpnode::rtpsend {

/// Writes the summary of a finished run (stderr; --stats-json when given).
void report(const Options& o, const Plan& p, const std::vector<std::unique_ptr<Stream>>& streams);

}  // namespace rtpnode::rtpsend
