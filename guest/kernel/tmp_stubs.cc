#include "hvmm/guest/fault.h"
#include "hvmm/guest/panic.h"
extern "C" void syscall_dispatch(hvmm::guest::TrapFrame*) {}
extern "C" void user_set_trap_stack(uint64_t) {}
namespace hvmm::guest {
void handle_page_fault(TrapFrame& frame, uint64_t) {
  panic_with_frame(3, frame, "page fault");
}
void kill_user_process(TrapFrame& frame, const char*) {
  panic_with_frame(3, frame, "user");
}
}  // namespace hvmm::guest
