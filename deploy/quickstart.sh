#!/usr/bin/env bash
# Quick start: install what is missing, build hvmm, boot a VM with the bundled guest kernel
# and run its in-guest selftests, then show what hvmm is for (deploy/demo.sh): under hvmmd, a
# VM runs a workload and gives memory back through its balloon and through host reclaim; the
# figures are printed and the picture of its guest-physical space is written to
# build/demo/stage2.svg.
#
#   deploy/quickstart.sh                  boot, then the demo
#   deploy/quickstart.sh -- ARGS...       only `hvmm run ARGS` instead
#
# On a machine without a usable /dev/kvm (a VM without nested virtualization), the same
# `hvmm run` runs inside a QEMU/TCG guest that has its own KVM (tests/nested-kvm/README.md):
# slower, but the same VMM and the same guest.
set -euo pipefail
cd "$(dirname "$0")/.."

kvm_usable() { [[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]]; }

if kvm_usable; then
  bash deploy/install-deps.sh
else
  bash deploy/install-deps.sh --bench  # QEMU, for the nested KVM
fi
# ccache (when present) hits across checkouts of the tree, as in tests/run-all.sh.
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

if [[ "${1:-}" == "--" ]]; then
  shift
  if kvm_usable; then
    echo "=== hvmm run $* ==="
    exec build/daemon/hvmm run "$@"
  fi
  echo "=== /dev/kvm is missing or not usable here: hvmm run $*, inside a QEMU/TCG guest with nested KVM ==="
  exec bash tests/nested-kvm/run.sh --hvmm build -- "$@"
fi

if kvm_usable; then
  exec sh deploy/demo.sh --boot build build/demo
fi
echo "=== /dev/kvm is missing or not usable here: the boot and the demo run inside a QEMU/TCG guest with nested KVM (slower, the same VMM and guest) ==="
status=0
bash tests/nested-kvm/run.sh --script build deploy/demo.sh -- --boot "$PWD/build" || status=$?
if [[ -f build/nested-kvm/results/out/stage2.svg ]]; then
  mkdir -p build/demo
  cp build/nested-kvm/results/out/* build/demo/
  echo "=== the picture is in build/demo/stage2.svg (the figures in build/demo/stats.json)"
fi
exit "$status"
