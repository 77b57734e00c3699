"""Run unittest tests and report them the way GoogleTest does, so the Python client's tests
are counted and judged like every C++ test binary: ctest (one test a name, skips by their
"[  SKIPPED ]" line), the nested-KVM runner (it reads gtest's output) and run-all.sh.

Understands --gtest_filter=POSITIVE[-NEGATIVE] (':'-separated shell patterns over
"Class.test_name"), --gtest_list_tests, and accepts --gtest_color and --gtest_output (ignored).
"""

import fnmatch
import sys
import time
import traceback
import unittest


def _matches(name, patterns):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns.split(":") if pattern)


def _selected(name, gtest_filter):
    positive, _, negative = gtest_filter.partition("-")
    return _matches(name, positive or "*") and not (negative and _matches(name, negative))


def _tests_of(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _tests_of(item)
        else:
            yield item


def _name(test):
    return "%s.%s" % (type(test).__name__, test._testMethodName)


class _Result(unittest.TestResult):
    """Prints gtest's per-test lines as the tests end."""

    def __init__(self):
        super().__init__()
        self.outcomes = {}
        self._started = 0.0

    def startTest(self, test):
        super().startTest(test)
        self._started = time.monotonic()
        print("[ RUN      ] %s" % _name(test), flush=True)

    def _end(self, test, outcome):
        milliseconds = int((time.monotonic() - self._started) * 1000)
        self.outcomes[_name(test)] = outcome
        print("[ %s ] %s (%d ms)" % (outcome, _name(test), milliseconds), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._end(test, "      OK")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        print("%s: Skipped\n%s\n" % (sys.argv[0], reason), flush=True)
        self._end(test, " SKIPPED")

    def _failed(self, test, error):
        print("".join(traceback.format_exception(*error)), end="", flush=True)
        self._end(test, " FAILED ")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._failed(test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._failed(test, err)


def main(module):
    """Run the tests of `module` as argv's gtest flags say; exit 0 unless one failed."""
    gtest_filter, list_only = "*", False
    for arg in sys.argv[1:]:
        if arg.startswith("--gtest_filter="):
            gtest_filter = arg.split("=", 1)[1]
        elif arg == "--gtest_list_tests":
            list_only = True
        elif not arg.startswith(("--gtest_color=", "--gtest_output=")):
            print("unknown argument: %s" % arg, file=sys.stderr)
            sys.exit(2)
    loaded = unittest.defaultTestLoader.loadTestsFromModule(module)
    tests = [test for test in _tests_of(loaded) if _selected(_name(test), gtest_filter)]
    if list_only:
        suites = {}
        for test in tests:
            suites.setdefault(type(test).__name__, []).append(test._testMethodName)
        for suite, names in suites.items():
            print("%s." % suite)
            for name in names:
                print("  %s" % name)
        return
    print("Note: Google Test filter = %s" % gtest_filter)
    print("[==========] Running %d tests." % len(tests), flush=True)
    result = _Result()
    started = time.monotonic()
    unittest.TestSuite(tests).run(result)
    milliseconds = int((time.monotonic() - started) * 1000)
    outcomes = list(result.outcomes.values())
    print("[==========] %d tests ran. (%d ms total)" % (len(outcomes), milliseconds))
    print("[  PASSED  ] %d tests." % outcomes.count("      OK"))
    skipped = outcomes.count(" SKIPPED")
    if skipped:
        print("[  SKIPPED ] %d tests." % skipped)
    failed = [name for name, outcome in result.outcomes.items() if outcome == " FAILED "]
    if failed:
        print("[  FAILED  ] %d tests, listed below:" % len(failed))
        for name in failed:
            print("[  FAILED  ] %s" % name)
    sys.stdout.flush()
    sys.exit(1 if failed else 0)
