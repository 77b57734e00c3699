#!/usr/bin/env bash
# Build hvmm and run every test: the regular build (unit, integration, e2e), the unit tests
# under AddressSanitizer + UndefinedBehaviorSanitizer, and the concurrency tests under
# ThreadSanitizer. Installs missing Debian packages first. Exits non-zero on any failure.
#
#   tests/run-all.sh            everything
#   HVMM_JOBS=N                 parallel build jobs (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${HVMM_JOBS:-$(nproc)}
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
cmake --build build-asan -j "$jobs"

section "sanitizer build (thread; concurrency tests)"
configure build-tsan -DHVMM_SANITIZE=thread -DHVMM_UNIT_ONLY=ON
cmake --build build-tsan -j "$jobs"

status=0
section "unit, integration and end-to-end tests"
ctest --test-dir build -j "$jobs" --output-on-failure -LE bench || status=1

section "unit tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j "$jobs" --output-on-failure -L unit || status=1

section "concurrency tests under TSan"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --test-dir build-tsan -j "$jobs" --output-on-failure -L concurrency || status=1

exit $status
