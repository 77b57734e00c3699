#!/usr/bin/env bash
# Run hvmm's KVM tests on a machine without /dev/kvm: boot Debian's kernel under QEMU/TCG with
# a CPU that has SVM, load kvm-amd inside (nested KVM), and run hvmm and every test binary that
# needs /dev/kvm there. Everything comes from Debian packages: the kernel and busybox-static are
# fetched once with `apt-get download` and cached in BUILD_DIR/nested-kvm (never installed).
#
#   tests/nested-kvm/run.sh BUILD_DIR [GTEST_FILTER]
#   tests/nested-kvm/run.sh --hvmm BUILD_DIR -- ARGS...   run `hvmm run ARGS` there instead,
#                           print its output and exit with its status (deploy/quickstart.sh)
#   tests/nested-kvm/run.sh --script BUILD_DIR SCRIPT -- ARGS...   run `sh SCRIPT ARGS` there
#                           instead, with hvmmd, hvmm-vm, hvmm and hvmm-client; the files it
#                           writes into $NK_OUT come back to BUILD_DIR/nested-kvm/results/out
#                           (deploy/demo.sh, which deploy/quickstart.sh runs)
#
# GTEST_FILTER (default `*`) selects tests; GuestKernelQemu* are always left out inside (there is
# no QEMU in the guest; those tests run on the host). Exits non-zero when a test failed, a binary
# crashed or hung, the guest did not finish, /dev/kvm did not appear inside or no test ran.
# The end-to-end tests (tests/e2e: the daemon, its VM processes, the CLI and the Python client)
# run after the integration tests, with a budget of their own. The last line is
# `nested-kvm: N passed, N failed, N skipped`. Environment:
#   HVMM_NESTED_KVM_TIMEOUT       seconds QEMU may run before it is killed (default 420), plus
#                                 HVMM_NESTED_KVM_E2E_TIMEOUT when end-to-end tests run
#   HVMM_NESTED_KVM_WATCHDOG      seconds one integration test binary may run inside (default 150)
#   HVMM_NESTED_KVM_E2E           0: leave the end-to-end tests out (default 1: run those built)
#   HVMM_NESTED_KVM_E2E_TIMEOUT   seconds added to QEMU's limit for them (default 900)
#   HVMM_NESTED_KVM_E2E_WATCHDOG  seconds one end-to-end binary may run inside (default 600)
set -Eeuo pipefail

readonly here=$(cd "$(dirname "$0")" && pwd)
readonly qemu_timeout=${HVMM_NESTED_KVM_TIMEOUT:-420}
readonly binary_watchdog=${HVMM_NESTED_KVM_WATCHDOG:-150}
readonly e2e_enabled=${HVMM_NESTED_KVM_E2E:-1}
readonly e2e_timeout=${HVMM_NESTED_KVM_E2E_TIMEOUT:-900}
readonly e2e_watchdog=${HVMM_NESTED_KVM_E2E_WATCHDOG:-600}
# kvm-amd and what it needs; the dependencies are read from the modules themselves.
readonly kvm_module=kvm_amd

passed=0
failed=0
skipped=0
started=$SECONDS

summarized=0
# Print the line run-all.sh adds to its totals.
summary() {
  echo "nested-kvm: $passed passed, $failed failed, $skipped skipped"
  summarized=1
}

# Count a failure of the stage itself (not of one test) and say why.
stage_fail() {
  echo "nested-kvm: FAIL: $*"
  failed=$((failed + 1))
}

# Fail the stage, print the summary and exit.
abort() {
  stage_fail "$*"
  summary
  exit 1
}

usage() {
  echo "usage: $0 BUILD_DIR [GTEST_FILTER] | $0 --hvmm BUILD_DIR -- ARGS..." \
    "| $0 --script BUILD_DIR SCRIPT -- ARGS..." >&2
  exit 2
}
hvmm_args=()
mode=tests
if [[ ${1:-} == --hvmm ]]; then
  [[ $# -ge 3 && -d $2 && $3 == -- ]] || usage
  mode=hvmm
  hvmm_dir=$2
  shift 3
  hvmm_args=("$@")
  set -- "$hvmm_dir"
elif [[ ${1:-} == --script ]]; then
  [[ $# -ge 4 && -d $2 && -f $3 && $4 == -- ]] || usage
  mode=script
  hvmm_dir=$2
  script_file=$(realpath "$3")
  shift 4
  hvmm_args=("$@")
  set -- "$hvmm_dir"
fi
if [[ $# -lt 1 || $# -gt 2 || ! -d $1 ]]; then
  usage
fi
readonly build=$(cd "$1" && pwd)
readonly cache=$build/nested-kvm
[[ $build != *[[:space:]]* ]] || abort "the build directory's path has a space: $build"
user_filter=${2:-*}
[[ $user_filter =~ ^[A-Za-z0-9_.*?:/-]+$ ]] || abort "unexpected characters in the filter: $user_filter"
if [[ $user_filter == *-* ]]; then
  readonly filter="$user_filter:GuestKernelQemu*"
else
  readonly filter="$user_filter-GuestKernelQemu*"
fi
command -v qemu-system-x86_64 >/dev/null ||
  abort "qemu-system-x86_64 is missing (deploy/install-deps.sh --bench installs it)"
mkdir -p "$cache"
exec 9>"$cache/lock"
flock -n 9 || abort "another run is using $cache"

# Run apt-get (or apt-cache) as root, through sudo when not root.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Download into DIR the Debian packages that command NAMES prints. When that fails, refresh
# the package lists once and try again (NAMES may then print a newer version).
apt_download() {
  local dir=$1 names=$2 packages
  chmod 0777 "$dir" # apt downloads as the unprivileged _apt user where it can
  packages=$($names)
  [[ -n $packages ]] && (cd "$dir" && apt-get download -q $packages) && return 0
  echo "nested-kvm: apt-get download failed; running apt-get update and trying again"
  as_root apt-get update -qq || return 1
  packages=$($names)
  [[ -n $packages ]] && (cd "$dir" && apt-get download -q $packages)
}

# The name of the busybox package.
busybox_package() { echo busybox-static; }

# The versioned kernel package linux-image-amd64 depends on (linux-image-6.1.0-NN-amd64).
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# Print module FILE's contents, decompressed.
module_contents() {
  case $1 in
    *.ko) cat "$1" ;;
    *.ko.xz) "$cache/busybox" xzcat "$1" ;;
    *) echo "nested-kvm: cannot decompress $1" >&2 && return 1 ;;
  esac
}

# The modules FILE depends on (modinfo's depends= field), space-separated.
module_depends() {
  module_contents "$1" | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '
}

declare -A module_file module_seen
module_order=()
# Append module NAME to module_order after everything it depends on.
order_module() {
  local name=${1//-/_}
  [[ -z ${module_seen[$name]:-} ]] || return 0
  module_seen[$name]=1
  [[ -n ${module_file[$name]:-} ]] || abort "module $name is not in the kernel package"
  local dep
  for dep in $(module_depends "${module_file[$name]}"); do
    order_module "$dep"
  done
  module_order+=("$name")
}

# Fetch busybox-static once and keep only its binary, as $cache/busybox.
fetch_busybox() {
  [[ -x $cache/busybox ]] && "$cache/busybox" true && return 0
  local tmp=$cache/tmp-busybox
  rm -rf "$tmp" && mkdir -p "$tmp/deb"
  apt_download "$tmp/deb" busybox_package || abort "cannot download busybox-static"
  dpkg-deb -x "$tmp"/deb/busybox-static_*.deb "$tmp/root"
  local binary
  binary=$(find "$tmp/root" -path '*bin/busybox' -type f | head -n 1)
  [[ -n $binary ]] || abort "busybox-static has no busybox binary"
  cp "$binary" "$cache/busybox.new" && mv "$cache/busybox.new" "$cache/busybox"
  rm -rf "$tmp"
}

# Fetch the kernel package once and keep only what the guest needs in $cache/kernel:
# vmlinuz, the modules kvm-amd needs (decompressed) and modules.order (the load order).
fetch_kernel() {
  [[ -e $cache/kernel/complete ]] && return 0
  local tmp=$cache/tmp-kernel
  echo "nested-kvm: fetching the kernel linux-image-amd64 depends on (about 70 MB, once)"
  rm -rf "$tmp" "$cache/kernel" && mkdir -p "$tmp/deb" "$cache/kernel/modules"
  apt_download "$tmp/deb" kernel_package || abort "cannot download linux-image-amd64's kernel"
  local deb package
  deb=$(echo "$tmp"/deb/linux-image-*.deb)
  [[ -f $deb ]] || abort "no single kernel package was downloaded: $deb"
  package=$(basename "${deb%%_*}")
  local version=${package#linux-image-}
  dpkg-deb -x "$deb" "$tmp/root"
  cp "$tmp/root/boot/vmlinuz-$version" "$cache/kernel/vmlinuz"
  local file name
  while read -r file; do
    name=${file##*/}
    name=${name%%.ko*}
    module_file[${name//-/_}]=$file
  done < <(find "$tmp/root" -path "*/lib/modules/$version/*" -name '*.ko*')
  order_module "$kvm_module"
  for name in "${module_order[@]}"; do
    module_contents "${module_file[$name]}" >"$cache/kernel/modules/$name.ko"
    echo "$name.ko" >>"$cache/kernel/modules.order"
  done
  echo "$package" >"$cache/kernel/package"
  rm -rf "$tmp"
  touch "$cache/kernel/complete"
}

# Build the static KVM smoke program when its source is newer.
build_smoke() {
  local source=$here/kvm_smoke.c
  [[ $cache/kvm_smoke -nt $source ]] && return 0
  "${CC:-cc}" -O2 -static -Wall -Wextra -Werror -o "$cache/kvm_smoke" "$source" ||
    abort "cannot build kvm_smoke (needs a C compiler and static libc)"
}

# The test binaries that need /dev/kvm: every vmm and guest integration test.
test_binaries() {
  local file
  for file in "$build"/tests/integration/vmm/*_test "$build"/tests/integration/guest/*_test; do
    [[ -f $file && -x $file ]] && echo "$file"
  done
}

# Whether FILE is an ELF executable (a script is copied as it is, not stripped or ldd'ed).
is_elf() { [[ $(head -c 4 "$1" 2>/dev/null) == $'\x7fELF' ]]; }

# The end-to-end test programs (tests/e2e), unless HVMM_NESTED_KVM_E2E=0: every gtest binary
# of tests/e2e/daemon and the Python client's test wrapper, those that were built.
e2e_test_binaries() {
  [[ $e2e_enabled != 0 ]] || return 0
  local file
  for file in "$build"/tests/e2e/daemon/*_test "$build"/tests/e2e/python/python_client_e2e_test; do
    [[ -f $file && -x $file ]] && echo "$file"
  done
}

# The programs the end-to-end tests start (hvmmd, hvmm-vm, hvmm-client), from the list the
# build writes; those that exist.
e2e_programs() {
  local list=$build/tests/e2e/programs.txt file
  [[ -f $list ]] || return 0
  while read -r file; do
    [[ -n $file && -x $file ]] && echo "$file"
  done <"$list"
}

# Copy the Python client's tests into ROOT: their build folder (sources, stubs, the wrapper)
# and the files `--list-imports` names (Debian's python3, the stdlib modules, grpc and
# protobuf). The interpreter and the extension modules, whose libraries ldd must find, are
# appended to the array python_elves.
copy_python_tests() {
  local root=$1 wrapper=$2 folder file
  folder=$(dirname "$wrapper")
  "$wrapper" --list-imports >"$cache/python-files" ||
    abort "$wrapper --list-imports failed (deploy/install-deps.sh installs python3-grpcio)"
  mkdir -p "$root$folder"
  cp -a "$folder/." "$root$folder/"
  rm -rf "$root$folder/CMakeFiles"
  # One tar for the few hundred files (a cp each took half a minute on a busy machine); -h
  # copies what a symlink names (/usr/bin/python3).
  tar -chf - -T "$cache/python-files" 2>/dev/null | tar -xf - -C "$root" ||
    abort "cannot copy the Python client's modules"
  while read -r file; do
    if [[ $file == */bin/* || $file == *.so ]]; then python_elves+=("$file"); fi
  done <"$cache/python-files"
}

# The KVM benchmarks to smoke-run, "ABSOLUTE-BINARY ARGS..." a line: those of
# tests/nested-kvm/benchmarks that were built, only when every test runs (the default filter).
benchmark_lines() {
  [[ $user_filter == '*' ]] || return 0
  local binary args
  while read -r binary args; do
    [[ -z $binary || $binary == \#* ]] && continue
    [[ -x $build/$binary ]] && echo "$build/$binary $args"
  done <"$here/benchmarks"
}

# Copy FILE into the initramfs tree ROOT at the same absolute path (stripped when STRIP=1).
copy_at_same_path() {
  local root=$1 file=$2 strip=${3:-0}
  mkdir -p "$root$(dirname "$file")"
  if [[ $strip -eq 1 ]]; then
    strip -o "$root$file" "$file"
  else
    cp -L "$file" "$root$file"
  fi
}

# Build $cache/initramfs.gz: busybox, the modules, /init and its config, kvm_smoke, hvmm, the
# test guests, the guest kernel and the test binaries with their shared libraries.
build_initramfs() {
  local root=$cache/root
  rm -rf "$root" && mkdir -p "$root"/{bin,dev,proc,sys,tmp,nk,lib/modules}
  cp "$cache/busybox" "$root/bin/busybox"
  local applet
  for applet in $("$cache/busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
  done
  cp "$cache"/kernel/modules/*.ko "$root/lib/modules/"
  cp "$here/init" "$root/init" && chmod 755 "$root/init"
  cp "$cache/kvm_smoke" "$root/kvm_smoke"
  local binaries=() file
  if [[ $mode == tests ]]; then
    mapfile -t binaries < <(test_binaries)
    [[ ${#binaries[@]} -gt 0 ]] || abort "no test binaries under $build/tests/integration (build first)"
  fi
  local benchmarks=() line
  [[ $mode == tests ]] && mapfile -t benchmarks < <(benchmark_lines)
  local e2e=() e2e_elves=() python_elves=()
  if [[ $mode == tests ]]; then
    mapfile -t e2e < <(e2e_test_binaries)
    for file in "${e2e[@]}"; do
      if is_elf "$file"; then
        e2e_elves+=("$file")
      else
        copy_python_tests "$root" "$file"
      fi
    done
    # The daemon's programs also serve the daemon's load benchmark (tests/nested-kvm/benchmarks).
    mapfile -t -O "${#e2e_elves[@]}" e2e_elves < <(e2e_programs)
  elif [[ $mode == script ]]; then
    # A script drives hvmmd through the CLI: the daemon's programs, no tests.
    mapfile -t e2e_elves < <(e2e_programs)
    [[ ${#e2e_elves[@]} -gt 0 ]] || abort "$build/tests/e2e/programs.txt lists no programs (build hvmmd)"
  fi
  [[ -x $build/daemon/hvmm ]] || abort "$build/daemon/hvmm is missing (build first)"
  local elves=("$build/daemon/hvmm" "${binaries[@]}" "${e2e_elves[@]}")
  # hvmm-vm: the VM process the VmProcess tests start (when this build has it).
  [[ -x $build/daemon/hvmm-vm ]] && elves+=("$build/daemon/hvmm-vm")
  for line in "${benchmarks[@]}"; do
    elves+=("${line%% *}")
  done
  for file in "${elves[@]}"; do
    copy_at_same_path "$root" "$file" 1
  done
  # strace and coreutils' timeout: Cli.ArgumentErrorsComeBeforeKvm runs hvmm under them.
  for file in /usr/bin/strace /usr/bin/timeout; do
    if [[ -x $file ]]; then
      rm -f "$root$file"
      copy_at_same_path "$root" "$file"
      elves+=("$file")
    fi
  done
  for file in "$build"/tests/guests/*.elf "$build"/guest/*.elf; do
    copy_at_same_path "$root" "$file"
  done
  elves+=("${python_elves[@]}")
  # (grep -v: given several files, ldd heads each one's list with its name and a colon)
  for file in $(ldd "${elves[@]}" | grep -v ':$' | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
    [[ -e $root$file ]] || copy_at_same_path "$root" "$file"
  done
  # Users and groups for the daemon (its socket's group, peer credentials).
  mkdir -p "$root/etc"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
  echo 'root:x:0:' >"$root/etc/group"
  {
    echo "NK_MODULES='$(tr '\n' ' ' <"$cache/kernel/modules.order")'"
    echo "NK_FILTER='$filter'"
    echo "NK_WATCHDOG=$binary_watchdog"
    echo "NK_BINARIES='${binaries[*]}'"
    echo "NK_E2E_BINARIES='${e2e[*]}'"
    echo "NK_E2E_WATCHDOG=$e2e_watchdog"
    echo "NK_HVMM='$build/daemon/hvmm'"
  } >"$root/nk/config"
  printf '%s\n' "${benchmarks[@]}" >"$root/nk/benchmarks"
  [[ $mode == tests ]] || write_hvmm_args "$root"
  if [[ $mode == script ]]; then
    mv "$root/nk/hvmm-args" "$root/nk/script-args"
    cp "$script_file" "$root/nk/script"
  fi
  (cd "$root" && find . | "$cache/busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$cache/initramfs.gz"
  printf '%s\n' "${binaries[@]}" "${e2e[@]}" | sed '/^$/d' >"$cache/binaries"
  printf '%s\n' "${e2e[@]}" | sed '/^$/d' >"$cache/e2e-binaries"
}

# Write the `hvmm run` arguments for the guest, one a line (its shell reads them back without
# any quoting rules). An argument naming an existing file (a --kernel or --initrd) is copied
# into the initramfs and passed as an absolute path; files hvmm would write (--console-log,
# --fault-log) stay inside the guest.
write_hvmm_args() {
  local root=$1 arg absolute
  : >"$root/nk/hvmm-args"
  for arg in "${hvmm_args[@]}"; do
    if [[ -f $arg ]]; then
      absolute=$(realpath "$arg")
      [[ -e $root$absolute ]] || copy_at_same_path "$root" "$absolute"
      arg=$absolute
    fi
    printf '%s\n' "$arg" >>"$root/nk/hvmm-args"
  done
}

qemu_pid=
# Stop QEMU (through timeout(1), which passes the signal on) if this script is interrupted.
stop_qemu() {
  [[ -n $qemu_pid ]] && kill -TERM "$qemu_pid" 2>/dev/null
  qemu_pid=
}
error_line=
# On any exit: stop QEMU, and if a command failed before the summary, say so and print it.
on_exit() {
  local rc=$?
  stop_qemu
  if [[ $summarized -eq 0 ]]; then
    stage_fail "stopped early (status $rc${error_line:+, line $error_line})"
    summary
  fi
}
trap 'error_line=$LINENO' ERR
trap 'stop_qemu; exit 130' INT TERM
trap on_exit EXIT

# Boot the initramfs; QEMU is killed after $qemu_timeout seconds whatever happens.
# thread=single: multi-threaded TCG with two vCPUs wedged the guest kernel (int3 text patching
# racing with MTTCG), one TCG thread never did.
boot_guest() {
  rm -f "$cache/console.log" "$cache/serial1.log"
  timeout -k 10 "$guest_timeout" qemu-system-x86_64 \
    -accel tcg,thread=single -cpu max -m 2G -smp 2 -machine q35 \
    -display none -no-reboot -nodefaults -monitor none \
    -serial "file:$cache/console.log" -serial "file:$cache/serial1.log" \
    -kernel "$cache/kernel/vmlinuz" -initrd "$cache/initramfs.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" </dev/null &
  qemu_pid=$!
  local rc=0
  wait "$qemu_pid" || rc=$?
  qemu_pid=
  [[ $rc -ne 124 && $rc -ne 137 ]] || stage_fail "QEMU killed after ${guest_timeout}s"
  [[ $rc -eq 0 || $rc -eq 124 || $rc -eq 137 ]] || stage_fail "QEMU exited with status $rc"
}

# Decode the files the guest sent over ttyS1 into $cache/results and keep its record lines.
unpack_results() {
  local results=$cache/results
  rm -rf "$results" && mkdir -p "$results"
  touch "$results/records.txt"
  [[ ! -f $cache/serial1.log ]] || tr -d '\r' <"$cache/serial1.log" >"$results/records.txt"
  awk -v dir="$results" '
    /^NK-FILE / { out = dir "/" $2 ".b64"; next }
    /^NK-END / { close(out); out = ""; next }
    out != "" { print > out }
  ' "$results/records.txt"
  local encoded
  for encoded in "$results"/*.b64; do
    [[ -e $encoded ]] || continue
    base64 -d "$encoded" >"${encoded%.b64}" 2>/dev/null || stage_fail "result file $(basename "${encoded%.b64}") arrived damaged"
    rm -f "$encoded"
  done
}

# The value of record KEY (the rest of its first line), or "".
record() { sed -n "s/^$1 //p" "$cache/results/records.txt" | head -n 1; }

# Read one binary's gtest log: print each failing test's output and each skip's reason, and
# write "PASSED FAILED SKIPPED UNFINISHED-TEST" to the counts file.
read_gtest_log() {
  awk -v counts="$2" '
    function flush_output() { printf "%s", output; output = "" }
    /^\[ RUN      \] / {
      current = substr($0, 14); output = $0 "\n"; reason = ""; want_reason = 0; next
    }
    /^\[       OK \] .* \([0-9]+ ms\)$/ { ok++; current = ""; output = ""; next }
    /^\[  FAILED  \] .* \([0-9]+ ms\)$/ {
      bad++; print "--- failed: " current; flush_output(); print $0; current = ""; next
    }
    /^\[  SKIPPED \] .* \([0-9]+ ms\)$/ {
      skip++; print "nested-kvm: skipped " current ": " reason; current = ""; output = ""; next
    }
    current != "" {
      output = output $0 "\n"
      if ($0 == "") { want_reason = 0 }
      else if (want_reason) { reason = reason (reason == "" ? "" : " ") $0 }
      if ($0 ~ /: Skipped$/) { want_reason = 1 }
      next
    }
    END {
      if (current != "") { print "--- unfinished: " current; flush_output() }
      printf "%d %d %d %s\n", ok, bad, skip, current > counts
    }
  ' "$1"
}

# Judge one NK-BIN record "NAME RC SECONDS HUNG" and add its tests to the totals.
judge_binary() {
  local name=$1 rc=$2 seconds=$3 hung=$4
  local log=$cache/results/$name.log counts=$cache/results/$name.counts
  if [[ ! -f $log ]]; then
    stage_fail "$name: its output did not come back"
    return
  fi
  read_gtest_log "$log" "$counts"
  local ok bad skip unfinished
  read -r ok bad skip unfinished <"$counts"
  passed=$((passed + ok))
  failed=$((failed + bad))
  skipped=$((skipped + skip))
  gtest_ran=$((gtest_ran + ok + bad))
  echo "nested-kvm: $name: $ok passed, $bad failed, $skip skipped (${seconds}s, status $rc)"
  local watchdog=$binary_watchdog
  grep -q "/$name\$" "$cache/e2e-binaries" && watchdog=$e2e_watchdog
  if [[ $hung -eq 1 ]]; then
    stage_fail "$name hung: killed after ${watchdog}s${unfinished:+ during $unfinished}"
  elif [[ -n $unfinished ]]; then
    stage_fail "$name crashed (status $rc) during $unfinished"
  elif [[ $rc -ne 0 && $bad -eq 0 ]]; then
    stage_fail "$name exited with status $rc though no test failed"
  fi
}

# Judge one NK-BENCH record "NAME RC SECONDS HUNG": its output is printed (the figures), and it
# counts as one test: passed (0), skipped (77) or failed.
judge_benchmark() {
  local name=$1 rc=$2 seconds=$3 hung=$4 log=$cache/results/$1.bench.log
  [[ -f $log ]] && sed "s/^/nested-kvm: $name: /" "$log"
  if [[ $hung -eq 1 ]]; then
    stage_fail "benchmark $name hung: killed after ${binary_watchdog}s"
  elif [[ $rc -eq 77 ]]; then
    skipped=$((skipped + 1))
  elif [[ $rc -eq 0 ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "nested-kvm: benchmark $name failed (status $rc, ${seconds}s)"
  fi
}

# Say how long the stage has run so far, after phase $1.
phase_done() { echo "nested-kvm: $1 done at $((SECONDS - started))s"; }

fetch_busybox
fetch_kernel
phase_done "fetch"
build_smoke
build_initramfs
phase_done "initramfs ($(du -k "$cache/initramfs.gz" | cut -f1) KiB)"
guest_timeout=$qemu_timeout
if [[ -s $cache/e2e-binaries || $mode == script ]]; then
  guest_timeout=$((qemu_timeout + e2e_timeout))
  echo "nested-kvm: with $(wc -l <"$cache/e2e-binaries") end-to-end test programs"
fi
echo "nested-kvm: booting $(cat "$cache/kernel/package") under QEMU/TCG (limit ${guest_timeout}s)"
boot_guest
phase_done "guest run"
unpack_results

gtest_ran=0
kvm=$(record NK-KVM)
if [[ $kvm != ok ]]; then
  tail -n 40 "$cache/console.log" 2>/dev/null || true
  abort "/dev/kvm did not appear inside the guest (${kvm:-no report}); console: $cache/console.log"
fi
if [[ $mode == script ]]; then
  summarized=1  # no test totals in this mode
  status=$(record NK-SCRIPT)
  [[ -f $cache/results/script.log ]] && cat "$cache/results/script.log"
  mkdir -p "$cache/results/out"
  for file in "$cache"/results/out-*; do
    [[ -e $file ]] && mv "$file" "$cache/results/out/${file##*/out-}"
  done
  if [[ -z $status ]]; then
    tail -n 40 "$cache/console.log" 2>/dev/null || true
    echo "nested-kvm: the script did not finish inside the guest; console: $cache/console.log" >&2
    exit 1
  fi
  exit "$status"
fi
if [[ $mode == hvmm ]]; then
  summarized=1  # no test totals in this mode
  status=$(record NK-HVMM)
  [[ -f $cache/results/hvmm.log ]] && cat "$cache/results/hvmm.log"
  [[ -f $cache/results/stats.json ]] && cat "$cache/results/stats.json"
  if [[ -z $status ]]; then
    tail -n 40 "$cache/console.log" 2>/dev/null || true
    echo "nested-kvm: hvmm did not finish inside the guest; console: $cache/console.log" >&2
    exit 1
  fi
  exit "$status"
fi
smoke=$(record NK-SMOKE)
if [[ $smoke == 0 ]]; then
  passed=$((passed + 1))
else
  grep kvm_smoke "$cache/console.log" || true
  stage_fail "kvm_smoke failed inside the guest (status ${smoke:-missing})"
fi
while read -r name rc seconds hung; do
  judge_binary "$name" "$rc" "$seconds" "$hung"
done < <(sed -n 's/^NK-BIN //p' "$cache/results/records.txt")
while read -r name rc seconds hung; do
  judge_benchmark "$name" "$rc" "$seconds" "$hung"
done < <(sed -n 's/^NK-BENCH //p' "$cache/results/records.txt")
while read -r binary; do
  grep -q "^NK-BIN $(basename "$binary") " "$cache/results/records.txt" ||
    echo "nested-kvm: $(basename "$binary") did not run"
done <"$cache/binaries"
if ! grep -q '^NK-DONE$' "$cache/results/records.txt"; then
  tail -n 40 "$cache/console.log" 2>/dev/null || true
  stage_fail "the guest did not finish; console: $cache/console.log"
fi
[[ $gtest_ran -gt 0 ]] || stage_fail "no test ran (filter: $filter)"
echo "nested-kvm: logs and gtest XML in $cache/results; $((SECONDS - started))s wall"
summary
[[ $failed -eq 0 ]]
