// Real-time scheduling for a node that must not glitch on a loaded machine (issue #15):
// `--rt-priority N` (1..99; 0 = off, the default) locks the process's memory (mlockall: no page
// fault in the audio callback), runs the loop thread at SCHED_FIFO N - 10 (at least 1: below the
// audio thread, above normal work; it sleeps in epoll between packets and never spins), and asks
// the host API for a real-time audio thread: PortAudio's ALSA host API through
// PaAlsa_EnableRealtimeScheduling (audio_backend.cpp); JACK runs its clients' process threads
// at its own real-time priority already. What is not permitted (no CAP_SYS_NICE / RLIMIT_RTPRIO,
// RLIMIT_MEMLOCK too small) is a warning, never a failure: the node plays on.
//
// Thread: the loop thread (it changes its own scheduling), before the device starts.
#pragma once

#include <string>
#include <vector>

namespace rtpnode {

/// Applies `--rt-priority priority` to this process and the calling thread; returns one warning
/// line per thing that was not permitted (empty: all done).
std::vector<std::string> enter_realtime(int priority);

}  // namespace rtpnode
