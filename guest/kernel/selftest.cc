// The selftest runner: one line per test (ok, FAILED or skip) with its time, then a
// one-line summary that counts skips apart from passes.
#include "hvmm/guest/selftest.h"

#include "hvmm/guest/arch/cpu.h"
#include "hvmm/guest/cmdline.h"
#include "hvmm/guest/console.h"
#include "hvmm/guest/time.h"

namespace hvmm::guest {

// Format the failure reason.
bool TestResult::fail(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vformat(message, sizeof(message), fmt, args);
  va_end(args);
  return false;
}

// Format a note for a passing test.
bool TestResult::note(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vformat(message, sizeof(message), fmt, args);
  va_end(args);
  return true;
}

// Mark the test skipped (see selftest.h).
bool TestResult::skip(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vformat(message, sizeof(message), fmt, args);
  va_end(args);
  skipped = true;
  return false;
}

// Run the selected tests of every area in a fixed order.
unsigned selftest_run(const char* list) {
  const Selftest* const areas[] = {kMmSelftests, kCpuSelftests, kTlbSelftests, kUserSelftests,
                                   kControlSelftests};
  unsigned run = 0, failed = 0, skipped = 0;
  uint64_t t0 = arch::rdtsc();
  for (const Selftest* area : areas) {
    for (const Selftest* t = area; t->name != nullptr; ++t) {
      if (!list_contains(list, t->name))
        continue;
      TestResult result;
      uint64_t start = arch::rdtsc();
      bool ok = t->run(result);
      uint64_t us = tsc_to_us(arch::rdtsc() - start);
      ++run;
      if (result.skipped) {
        ++skipped;
        printk("selftest %s: skip - %s (%lu us)\n", t->name, result.message, us);
      } else if (ok) {
        printk("selftest %s: ok%s%s (%lu us)\n", t->name, result.message[0] ? " - " : "",
               result.message, us);
      } else {
        ++failed;
        printk("selftest %s: FAILED %s (%lu us)\n", t->name, result.message, us);
      }
    }
  }
  printk("selftests: %u run, %u passed, %u failed, %u skipped (%lu us)\n", run,
         run - failed - skipped, failed, skipped, tsc_to_us(arch::rdtsc() - t0));
  return failed;
}

}  // namespace hvmm::guest
