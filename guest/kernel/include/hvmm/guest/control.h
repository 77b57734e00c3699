// The control channel's virtio driver: the device with id control::kControlDeviceId among the
// virtio_mmio.device= slots, VERSION_1 only, device-writable request buffers kept posted on
// queue 0 and one device-readable response per request on queue 1 (protocol in
// base/include/hvmm/base/control_protocol.h). Each request is copied out of its buffer
// before it is looked at, then served by control_service.h.
#pragma once

#include <cstdint>

namespace hvmm::guest {

// Claim the first control device, negotiate, set up both queues and post the request
// buffers. False when there is none (silently) or its setup failed (said on the console);
// then nothing is claimed and the kernel behaves as without it. After virtio_init().
bool control_init();

// Serve requests one at a time until kShutdown, halting with interrupts enabled between
// them, and return the status the host asked for; kExitControlFailed if the device needs
// a reset or stops returning buffers. Only after control_init() returned true.
uint8_t control_serve_until_shutdown();

}  // namespace hvmm::guest
