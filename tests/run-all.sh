#!/usr/bin/env bash
# Build hvmm and run every test: the regular build (unit, integration, fuzz smoke), the unit tests
# under AddressSanitizer + UndefinedBehaviorSanitizer, the concurrency tests under
# ThreadSanitizer, every benchmark briefly (a failed self-check or a missing figure fails), and
# a fixed number of libFuzzer executions of the ELF loader (clang build); on a machine without
# /dev/kvm, the KVM integration tests and the end-to-end tests (tests/e2e: hvmmd, its VM
# processes, the CLI and the Python client) inside a QEMU/TCG guest with nested KVM (the
# end-to-end tests that need no VM run in the regular ctest stage too). Installs missing
# Debian packages first. Exits non-zero on any failure. The last line is
# `total: N passed, N failed, N skipped`; a skipped test is never counted as passed, and each
# skip is listed with the reason it printed.
#
#   tests/run-all.sh            everything
#   HVMM_JOBS=N                 parallel build jobs (default: number of cores)
#   HVMM_FUZZ_RUNS=N            libFuzzer executions of the ELF loader (default 200000)
#   HVMM_VIRTIO_FUZZ_RUNS=N     libFuzzer executions of each virtio target and of the pool's
#                               decoder (default 20000)
#   HVMM_NESTED_KVM=0|1         KVM tests inside a QEMU/TCG guest (default: when /dev/kvm is
#                               missing or cannot be opened)
#   HVMM_NESTED_KVM_E2E=0|1     the end-to-end tests in that guest too (default 1; the budget
#                               knobs are in tests/nested-kvm/run.sh)
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

section_name=""
section_start=$SECONDS
timings=()
# Start a section (and close the previous one, recording how long it took).
section() {
  end_section
  section_name=$*
  section_start=$SECONDS
  printf '\n=== %s ===\n' "$*"
}
end_section() {
  if [[ -n "$section_name" ]]; then
    timings+=("$(printf '%5ds  %s' $((SECONDS - section_start)) "$section_name")")
  fi
  section_name=""
}

section "build (RelWithDebInfo)"
configure build
cmake --build build -j "$jobs"

section "sanitizer build (address,undefined; unit tests)"
configure build-asan -DHVMM_SANITIZE=address,undefined -DHVMM_UNIT_ONLY=ON
cmake --build build-asan -j "$jobs" --target hvmm_unit_tests

section "sanitizer build (thread; concurrency tests)"
configure build-tsan -DHVMM_SANITIZE=thread -DHVMM_UNIT_ONLY=ON
cmake --build build-tsan -j "$jobs" --target hvmm_concurrency_tests

section "libFuzzer build (clang++, address; ELF loader, virtqueue, balloon and pool fuzz targets)"
configure build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DHVMM_LIBFUZZER=ON -DHVMM_UNIT_ONLY=ON
cmake --build build-fuzz -j "$jobs" --target vmm_elf_libfuzzer vmm_virtqueue_libfuzzer \
  vmm_balloon_libfuzzer vmm_pool_libfuzzer

passed=0
failed=0
skipped=0
status=0

# Print each test that the ctest run in DIR skipped (or that is disabled), with the reason it
# printed: the line after gtest's "Skipped" marker, or a line starting with "SKIP".
print_skips() {
  local dir=$1 ctest_log=$2
  local log=$dir/Testing/Temporary/LastTest.log
  [[ -f $log ]] || log=/dev/null
  local name
  sed -n '/^The following tests did not run:/,/^$/p' "$ctest_log" |
    sed -nE 's/^[[:space:]]*[0-9]+ - (.*) \((Skipped|Disabled)\)$/\1\t\2/p' |
    while IFS=$'\t' read -r name kind; do
      local reason="disabled"
      if [[ $kind == Skipped ]]; then
        reason=$(awk -v name="$name" '
          index($0, " Test: ") && substr($0, index($0, " Test: ") + 7) == name { inside = 1; next }
          inside && /^<end of output>$/ { exit }
          inside && next_line { print; found = 1; exit }
          inside && /: Skipped$/ { next_line = 1; next }
          inside && /^(SKIP|bench check: SKIP)/ { print; found = 1; exit }
          END { if (!found) print "(no reason printed)" }' "$log")
      fi
      printf '  skipped: %s: %s\n' "$name" "$reason"
    done
}

# Run ctest in DIR with the given arguments, echo its output and add its counts to the
# totals. ctest counts skipped tests among the passed ones ("100% tests passed") and leaves
# disabled ones out of its total: both are taken from its "did not run" list instead.
run_ctest() {
  local dir=$1
  shift
  local log
  log=$(mktemp)
  local rc=0
  ctest --test-dir "$dir" -j "$jobs" --output-on-failure --no-tests=error "$@" 2>&1 | tee "$log" || rc=$?
  local summary
  summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [[ -z "$summary" ]]; then
    echo "no ctest summary: counted as a failure"
    failed=$((failed + 1))
    status=1
    rm -f "$log"
    return
  fi
  local total failed_here skipped_here disabled_here
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
  failed_here=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$summary")
  skipped_here=$(sed -n '/^The following tests did not run:/,/^$/p' "$log" | grep -cE '\(Skipped\)$' || true)
  disabled_here=$(sed -n '/^The following tests did not run:/,/^$/p' "$log" | grep -cE '\(Disabled\)$' || true)
  print_skips "$dir" "$log"
  rm -f "$log"
  passed=$((passed + total - failed_here - skipped_here))
  failed=$((failed + failed_here))
  skipped=$((skipped + skipped_here + disabled_here))
  [[ $rc -eq 0 ]] || status=1
}

# Run the ELF loader's libFuzzer target for a fixed number of executions from the seed corpus
# of the regular build (test guests, guest kernel, their variants); any crash, sanitizer report
# or property violation fails, and the input is kept in build-fuzz/.
run_elf_fuzz() {
  local runs=${HVMM_FUZZ_RUNS:-200000}
  local work log rc=0
  work=$(mktemp -d)
  log=$(mktemp)
  # -max_len keeps the CI run on the headers (the guest kernel's seeds are cut to 16 KiB);
  # long runs use the whole seeds (README).
  build-fuzz/tests/fuzz/vmm/vmm_elf_libfuzzer -runs="$runs" -max_len=16384 -timeout=10 \
    -artifact_prefix=build-fuzz/ "$work" build/tests/fuzz/vmm/elf_corpus >"$log" 2>&1 || rc=$?
  grep -E '^INFO: Seed:|^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs' "$log" || true
  if [[ $rc -eq 0 ]] && grep -qE "^Done $runs runs" "$log"; then
    echo "elf fuzz: $runs executions, no crash"
    passed=$((passed + 1))
  else
    tail -n 40 "$log"
    echo "elf fuzz: FAILED (exit status $rc; crash input in build-fuzz/)"
    failed=$((failed + 1))
    status=1
  fi
  rm -rf "$work" "$log"
}

# Run one libFuzzer target (NAME: virtqueue, balloon or pool) for a fixed number of
# executions from an empty corpus; any crash, sanitizer report or property violation fails.
run_virtio_fuzz() {
  local name=$1 runs=${HVMM_VIRTIO_FUZZ_RUNS:-20000}
  local work log rc=0
  work=$(mktemp -d)
  log=$(mktemp)
  "build-fuzz/tests/fuzz/vmm/vmm_${name}_libfuzzer" -runs="$runs" -max_len=8192 -timeout=10 \
    -seed=1 -artifact_prefix=build-fuzz/ "$work" >"$log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs' "$log" || true
  if [[ $rc -eq 0 ]] && grep -qE "^Done $runs runs" "$log"; then
    echo "$name fuzz: $runs executions, no crash"
    passed=$((passed + 1))
  else
    tail -n 40 "$log"
    echo "$name fuzz: FAILED (exit status $rc; crash input in build-fuzz/)"
    failed=$((failed + 1))
    status=1
  fi
  rm -rf "$work" "$log"
}

# The KVM integration tests again, inside a QEMU/TCG guest with nested KVM (tests/nested-kvm),
# when this machine has no usable /dev/kvm (its KVM tests skipped above). HVMM_NESTED_KVM=1
# forces the stage, 0 leaves it out.
run_nested_kvm() {
  local log rc=0 line
  log=$(mktemp)
  bash tests/nested-kvm/run.sh build 2>&1 | tee "$log" || rc=$?
  line=$(grep -E '^nested-kvm: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$log" | tail -n 1 || true)
  rm -f "$log"
  if [[ -z $line ]]; then
    status=1
    return
  fi
  passed=$((passed + $(sed -E 's/^nested-kvm: ([0-9]+) passed.*/\1/' <<<"$line")))
  failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
  skipped=$((skipped + $(sed -E 's/.* ([0-9]+) skipped$/\1/' <<<"$line")))
  [[ $rc -eq 0 ]] || status=1
}

section "unit, integration and fuzz-smoke tests"
run_ctest build -LE bench

section "unit tests under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest build-asan -L unit

section "concurrency tests under TSan"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  run_ctest build-tsan -L concurrency

section "benchmark smoke (each benchmark briefly; a failed self-check or a missing figure fails)"
run_ctest build -L bench

section "ELF loader fuzz (libFuzzer, ${HVMM_FUZZ_RUNS:-200000} executions)"
run_elf_fuzz

section "virtqueue, balloon and pool fuzz (libFuzzer, ${HVMM_VIRTIO_FUZZ_RUNS:-20000} executions each)"
run_virtio_fuzz virtqueue
run_virtio_fuzz balloon
run_virtio_fuzz pool

nested=${HVMM_NESTED_KVM:-auto}
if [[ $nested == auto ]]; then
  nested=1
  if [[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]]; then nested=0; fi
fi
if [[ $nested == 1 ]]; then
  section "KVM integration and end-to-end tests inside a QEMU/TCG guest with nested KVM (no /dev/kvm here)"
  run_nested_kvm
fi
end_section

echo
echo "time per stage:"
printf '%s\n' "${timings[@]}"
echo
echo "total: $passed passed, $failed failed, $skipped skipped"
exit $status
