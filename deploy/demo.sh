#!/bin/sh
# What hvmm is for, in one run: hvmmd on a temporary socket, one VM (256 MiB, a balloon, host
# reclaim) that runs a workload, then gives memory back, first through the balloon (the guest
# cooperates), then through reclaim (the host takes cold pages without the guest's help). The
# figures (host RSS before and after, pages by state, the working set) are printed, and the
# picture of the guest-physical space is written to OUT_DIR/stage2.svg.
#
#   deploy/demo.sh [--boot] BUILD_DIR [OUT_DIR]
#
# --boot first boots the bundled guest kernel with its selftests under `hvmm run` (the quick
# start's first step). OUT_DIR defaults to $NK_OUT inside the nested-KVM guest (its files come
# back to the host), BUILD_DIR/demo otherwise. Needs /dev/kvm; deploy/quickstart.sh runs it
# inside the nested-KVM guest where there is none (tests/nested-kvm/run.sh --script). POSIX sh,
# so busybox runs it there.
set -eu

boot=0
if [ "${1:-}" = --boot ]; then
  boot=1
  shift
fi
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 [--boot] BUILD_DIR [OUT_DIR]" >&2; exit 2; }
build=$(cd "$1" && pwd)
out=${2:-${NK_OUT:-$build/demo}}
mkdir -p "$out"
hvmm=$build/daemon/hvmm
hvmmd=$build/daemon/server/hvmmd
for program in "$hvmm" "$hvmmd" "$build/daemon/hvmm-vm" "$build/daemon/hvmm-client"; do
  [ -x "$program" ] || { echo "demo: $program is missing (build first)" >&2; exit 1; }
done

if [ $boot -eq 1 ]; then
  echo "=== hvmm run --memory 256M --vcpus 2 --cmdline selftest=all"
  "$hvmm" run --memory 256M --vcpus 2 --cmdline selftest=all
fi

vm=demo
memory=256M
workload=64M
balloon=128M
epochs=4
work=$(mktemp -d)
socket=$work/hvmmd.sock
daemon_pid=

# Stop the daemon this script started (its VMs go with it) and remove its files.
cleanup() {
  if [ -n "$daemon_pid" ]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

h() { "$hvmm" --socket "$socket" "$@"; }

# The first number after "KEY": in `hvmm stats NAME --json` (protobuf's JSON mapping).
json_number() {
  sed -n "s/.*\"$1\": *\"\\{0,1\\}\\([0-9][0-9]*\\).*/\\1/p" | head -n 1
}
mib() { echo "$(($1 / 1048576)) MiB"; }
rss() { h stats "$vm" --json | json_number rssBytes; }

cat >"$work/hvmmd.conf" <<CONF
socket = "$socket"
state-dir = "$work/state"
vm-process = "$build/daemon/hvmm-vm"
log-level = "info"
request-deadline-ms = 600000
start-timeout-ms = 600000
CONF
mkdir -p "$work/state"
"$hvmmd" --config "$work/hvmmd.conf" >"$work/hvmmd.log" 2>&1 &
daemon_pid=$!
tries=0
until h vm list >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ $tries -gt 120 ] || ! kill -0 "$daemon_pid" 2>/dev/null; then
    echo "demo: hvmmd did not come up; its log:" >&2
    cat "$work/hvmmd.log" >&2
    exit 1
  fi
  sleep 1
done
echo "=== demo: hvmmd on $socket"

echo "=== 1. a VM of $memory with a balloon and host reclaim; its guest writes $workload (workload touch_seq)"
h vm create "$vm" --memory "$memory" --cmdline "workload=touch_seq:$workload" \
  --reclaim "period=3600s,cold=2,budget=off" --start >/dev/null
# The VM process's console log, not `hvmm vm console`: the console stream of a running VM
# stays open until the VM ends, so a reader that stops at the line it wants would wait there.
console=$work/state/vms/$vm/console.log
tries=0
until grep -q "workload touch_seq: ok" "$console" 2>/dev/null; do
  tries=$((tries + 1))
  if [ $tries -gt 600 ] || grep -q "workload touch_seq: FAILED" "$console" 2>/dev/null; then
    echo "demo: the workload did not finish; the console:" >&2
    cat "$console" >&2 || true
    exit 1
  fi
  sleep 1
done
grep "workload touch_seq" "$console" || true
rss_workload=$(rss)
echo "host RSS of the VM with the workload's pages in it: $(mib "$rss_workload")"

echo "=== 2. the balloon takes $balloon back (the guest gives its free pages)"
h balloon set "$vm" "$balloon" --wait 600s
rss_balloon=$(rss)

echo "=== 3. reclaim: $epochs epochs take the cold pages the guest did not give (no guest help)"
h reclaim "$vm" --epochs "$epochs"
rss_reclaim=$(rss)

echo "=== 4. the VM now (hvmm stats $vm)"
h stats "$vm"
h stage2 dump "$vm" --svg "$out/stage2.svg"
h stats "$vm" --json >"$out/stats.json"

echo "=== demo: host RSS of the VM: $(mib "$rss_workload") with the workload's pages," \
  "$(mib "$rss_balloon") after the balloon, $(mib "$rss_reclaim") after reclaim"
echo "=== demo: the picture of its guest-physical space: $out/stage2.svg"
h vm stop "$vm" --force >/dev/null
h vm delete "$vm" >/dev/null
