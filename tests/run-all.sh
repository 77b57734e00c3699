#!/usr/bin/env bash
# Build hvmm and run every test: the regular build (unit, integration, fuzz smoke), the unit tests
# under AddressSanitizer + UndefinedBehaviorSanitizer, and the concurrency tests under
# ThreadSanitizer. Installs missing Debian packages first. Exits non-zero on any failure.
#
#   tests/run-all.sh            everything
#   HVMM_JOBS=N                 parallel build jobs (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${HVMM_JOBS:-$(nproc)}
# Let ccache share objects between checkouts at different paths (CI clones afresh).
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
bash deploy/install-deps.sh --bench

configure() {  # configure DIR [cmake args...]
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
}

section() { printf '\n=== %s ===\n' "$*"; }

section "build (RelWithDebInfo)"
configure build
cmake --build build -j "$jobs"

section "sanitizer build (address,undefined; unit tests)"
configure build-asan -DHVMM_SANITIZE=address,undefined -DHVMM_UNIT_ONLY=ON
cmake --build build-asan -j "$jobs" --target hvmm_unit_tests

section "sanitizer build (thread; concurrency tests)"
configure build-tsan -DHVMM_SANITIZE=thread -DHVMM_UNIT_ONLY=ON
cmake --build build-tsan -j "$jobs" --target hvmm_concurrency_tests

passed=0
failed=0
status=0
# Run ctest with the given arguments, echo its output and add its counts to the totals.
run_ctest() {
  local log
  log=$(mktemp)
  local rc=0
  ctest -j "$jobs" --output-on-failure --no-tests=error "$@" 2>&1 | tee "$log" || rc=$?
  local summary
  summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  rm -f "$log"
  if [[ -z "$summary" ]]; then
    status=1
    return
  fi
  local total failed_here
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
  failed_here=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$summary")
  passed=$((passed + total - failed_here))
  failed=$((failed + failed_here))
  [[ $rc -eq 0 ]] || status=1
}

section "unit, integration and fuzz-smoke tests"
run_ctest --test-dir build -LE bench

section "unit tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest --test-dir build-asan -L unit

section "concurrency tests under TSan"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  run_ctest --test-dir build-tsan -L concurrency

echo
echo "total: $passed passed, $failed failed"
exit $status
