// Service threads of the VMM (fault handler, watchdog, device events) and signals.
//
// A process-directed signal goes to any thread that does not block it. The Machine serves
// SIGINT and SIGTERM on a signalfd, with them blocked in the threads it starts; a service
// thread that left them unblocked would take them instead, and where the signal's disposition
// is SIG_IGN (inherited: a background job of a non-interactive shell ignores SIGINT) the
// signal would be lost and the VM would never stop. So service threads start with every
// signal blocked: the creating thread blocks them around the creation, and the new thread
// inherits that mask from its first instruction on. Only vCPU threads take a signal (their
// kick).
#pragma once

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace hvmm::vmm {

// Start `body` on a new thread that blocks every blockable signal.
template <typename Body>
std::thread start_service_thread(Body&& body) {
  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &saved);
  std::thread thread(std::forward<Body>(body));
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  return thread;
}

}  // namespace hvmm::vmm
