// The boot CPU's idle loop after the requested work: it serves device events (the balloon's
// target, statistics, free page reporting) while the host drives the devices.
#pragma once

namespace hvmm::guest {

// With `idle=<seconds>`, serve device events for that long, halting between interrupts; a
// byte received on the console ends it early. Prints one line when it starts and one when it
// ends. Does nothing without the option.
void idle_serve_devices();

}  // namespace hvmm::guest
