// Thread-contract annotations. Every function that runs on the audio thread is marked
// RTPNODE_REALTIME and documents its progress guarantee; cross-thread methods name the thread
// that may call them.
#pragma once

#if defined(__clang__) && __clang_major__ >= 20
#define RTPNODE_REALTIME [[clang::nonblocking]]
#else
#define RTPNODE_REALTIME
#endif
