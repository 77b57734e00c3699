// The guest side of the control channel, independent of its transport: one request in, one
// response out (base/include/hvmm/base/control_protocol.h). Everything in a request is
// untrusted: a bad magic, version or op is answered with kBadRequest, arguments out of
// range with kBadArguments, and nothing a request says can make the kernel fail. The
// virtio driver (control.cc) and the selftests call it; so could any other transport.
#pragma once

#include <cstdint>

#include "hvmm/base/control_protocol.h"

namespace hvmm::guest {

// The response to send, and whether the host asked the guest to end once it is sent.
struct ControlReply {
  control::ControlResponse response{};
  bool shutdown = false;    // kShutdown was accepted: send the response, then exit
  uint8_t exit_status = 0;  // the status to exit with
};

// Serve one request on the calling CPU (a private copy: the caller must not pass memory
// the host can still change). `taken_tsc` is the TSC when the transport took the request;
// latency_ns runs from it to the end of this call.
ControlReply control_serve(const control::ControlRequest& request, uint64_t taken_tsc);

// Pages the balloon driver holds. The balloon driver defines it; without it, a weak default
// answers 0. (Reported free pages come from the buddy allocator's own count.)
uint64_t balloon_held_pages();

}  // namespace hvmm::guest
