#!/usr/bin/env bash
# `cmake --install BUILD --prefix /usr` into a temporary DESTDIR must put every program where
# the installed unit names it, the configuration where its --config reads it, and the unit,
# sysusers.d and udev files where systemd and udev read them; the installed unit is the
# repository's (deploy/systemd/hvmmd.service) unchanged, and the installed hvmmd accepts the
# installed configuration.
#
#   check_install.sh BUILD_DIR
set -euo pipefail

build="${1:?usage: check_install.sh BUILD_DIR}"
source_unit="$(dirname "$0")/../../deploy/systemd/hvmmd.service"
destdir=$(mktemp -d)
trap 'rm -rf "$destdir"' EXIT

DESTDIR="$destdir" cmake --install "$build" --prefix /usr >"$destdir.log" 2>&1 || {
  cat "$destdir.log"
  echo "FAILED: cmake --install (are hvmmd, hvmm-vm, hvmm and hvmm-client built?)"
  exit 1
}
rm -f "$destdir.log"

failed=0
for file in usr/bin/hvmmd usr/bin/hvmm usr/bin/hvmm-client usr/libexec/hvmm/hvmm-vm \
  usr/lib/systemd/system/hvmmd.service usr/lib/sysusers.d/hvmm.conf \
  usr/lib/udev/rules.d/60-hvmm-userfaultfd.rules etc/hvmm/hvmmd.conf; do
  if [[ ! -e "$destdir/$file" ]]; then
    echo "missing: /$file"
    failed=1
  fi
done
unit="$destdir/usr/lib/systemd/system/hvmmd.service"
if [[ -e "$unit" ]]; then
  if ! cmp -s "$unit" "$source_unit"; then
    diff "$source_unit" "$unit" || true
    echo "the installed unit differs from deploy/systemd/hvmmd.service"
    failed=1
  fi
  while read -r path; do
    if [[ ! -e "$destdir$path" ]]; then
      echo "the unit names $path, which the install did not make"
      failed=1
    fi
  done < <(grep -E '^Exec[A-Za-z]*=' "$unit" | sed -E 's/^[^=]+=[-@:+!]*//' | tr ' ' '\n' |
             grep -E '^/' || true)
fi
# The installed daemon reads the installed configuration: --help after parsing it is not a
# check of the keys, so ask for a bad flag after the file and expect that flag alone named.
if [[ -x "$destdir/usr/bin/hvmmd" ]]; then
  out=$("$destdir/usr/bin/hvmmd" --config "$destdir/etc/hvmm/hvmmd.conf" --vmid-bits 99 2>&1) && status=0 || status=$?
  if [[ $status -ne 120 || "$out" != *"--vmid-bits"* ]]; then
    echo "$out"
    echo "hvmmd with the installed configuration: exit $status, expected 120 naming --vmid-bits"
    failed=1
  fi
fi
if [[ $failed -ne 0 ]]; then
  echo "FAILED: the install layout"
  exit 1
fi
echo "PASSED: cmake --install --prefix /usr: programs, unit, sysusers.d, udev rule, configuration"
