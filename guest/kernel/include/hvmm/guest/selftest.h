// The in-guest selftest runner: `selftest=all` (or a comma-separated list of names) runs
// the tests in order and prints one line per test, "selftest <name>: ok[ - <note>]",
// "selftest <name>: FAILED <reason>" or "selftest <name>: skip - <reason>", then the
// summary "selftests: N run, P passed, F failed, S skipped" (N = P + F + S). A skip is
// never a pass.
#pragma once

#include <cstddef>

namespace hvmm::guest {

// Where a test writes its failure reason, its skip reason or an optional note on success.
struct TestResult {
  char message[256] = {};
  bool skipped = false;  // set by skip(): the test could not check what it is about here
  // Record a formatted message; returns false so tests can `return r.fail(...)`.
  bool fail(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // Record a note printed after "ok"; returns true.
  bool note(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  // Mark the test skipped with its reason; returns false (a skip is not a pass), and the
  // runner reports it as a skip whatever the test returns afterwards.
  bool skip(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
};

// A selftest: returns true when it passed (see TestResult::skip for the third outcome).
struct Selftest {
  const char* name;
  bool (*run)(TestResult& result);
};

// The tests of each area (selftests_*.cc), each ending with a {nullptr, nullptr} entry.
extern const Selftest kMmSelftests[];
extern const Selftest kCpuSelftests[];
extern const Selftest kTlbSelftests[];
extern const Selftest kUserSelftests[];
extern const Selftest kControlSelftests[];

// Run the tests whose names are in `list`; returns the number of failures (skips are not
// failures).
unsigned selftest_run(const char* list);

}  // namespace hvmm::guest
