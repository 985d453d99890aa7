// The loop thread's clock (issue #14: offline rendering). Every part of the node that runs on the
// loop thread reads "now" here: CLOCK_MONOTONIC (uv_hrtime) normally; during an offline render
// (rtpnode --pcap FILE --output FILE, Node::run_offline) a virtual clock that the render sets to
// the capture time of each datagram and to the start of each output block, so the jitter
// buffers, deadlines, timeouts and events see the capture's timing while the CPU runs ahead of it.
#pragma once

#include "rtp/units.hpp"

namespace rtpnode {

/// Thread: loop. The monotonic clock every part of the node reads, ns: the virtual clock when one
/// is set (set_node_virtual_now), else uv_hrtime (CLOCK_MONOTONIC).
mono_ns_t node_now_ns();
/// Thread: loop (the offline render only). Sets the virtual clock to `t` (ns, > 0; it must not go
/// back); 0 returns to CLOCK_MONOTONIC.
void set_node_virtual_now(mono_ns_t t);

}  // namespace rtpnode
