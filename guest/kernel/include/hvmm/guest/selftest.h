// The in-guest selftest runner: `selftest=all` (or a comma-separated list of names) runs
// the tests in order and prints one line per test, "selftest <name>: ok" or
// "selftest <name>: FAILED <reason>", then a summary line.
#pragma once

#include <cstddef>

namespace hvmm::guest {

// Where a test writes its failure reason (or an optional note on success).
struct TestResult {
  char message[160] = {};
  // Record a formatted message; returns false so tests can `return r.fail(...)`.
  bool fail(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // Record a note printed after "ok"; returns true.
  bool note(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
};

// A selftest: returns true when it passed.
struct Selftest {
  const char* name;
  bool (*run)(TestResult& result);
};

// The tests of each area (selftests_*.cc), each ending with a {nullptr, nullptr} entry.
extern const Selftest kMmSelftests[];
extern const Selftest kCpuSelftests[];
extern const Selftest kTlbSelftests[];
extern const Selftest kUserSelftests[];

// Run the tests whose names are in `list`; returns the number of failures.
unsigned selftest_run(const char* list);

}  // namespace hvmm::guest
