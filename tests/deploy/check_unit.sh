#!/usr/bin/env bash
# The offline check of a systemd unit (tests/deploy/README.md): `systemd-analyze verify` in a
# temporary root that holds the unit, the host's own units, stand-in executables where the
# install puts the programs and the example configuration, failing on any message (systemd only warns of
# an unknown key or a bad value, and still exits 0); then `systemd-analyze security
# --offline=true`, which prints the exposure score and fails above --threshold.
#
#   check_unit.sh UNIT_FILE [--threshold N] [--mutate SED_EXPRESSION]
#
# The stand-ins are the programs the install makes, not whatever the unit names, so a wrong
# path in an Exec line fails too.
#
# --mutate edits the copy first (the negative tests: a misspelled directive must fail).
# Exit 0: passed; 1: failed, saying why; 77: skipped (no systemd-analyze), saying why.
set -euo pipefail

unit_file="${1:?usage: check_unit.sh UNIT_FILE [--threshold N] [--mutate SED]}"
shift
threshold=2.0
mutation=""
# What `cmake --install --prefix /usr` installs (deploy/CMakeLists.txt).
programs=(/usr/bin/hvmmd /usr/bin/hvmm /usr/bin/hvmm-client /usr/libexec/hvmm/hvmm-vm)
config="$(dirname "$0")/../../deploy/hvmmd.conf.example"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threshold) threshold="$2"; shift 2 ;;
    --mutate) mutation="$2"; shift 2 ;;
    *) echo "check_unit: unknown argument '$1'" >&2; exit 120 ;;
  esac
done

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIPPED: systemd-analyze is missing (Debian's systemd package provides it)"
  exit 77
fi
if [[ ! -d /usr/lib/systemd/system ]] && [[ ! -d /lib/systemd/system ]]; then
  echo "SKIPPED: no systemd unit directory on this host for the units the unit refers to"
  exit 77
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
name=$(basename "$unit_file")
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd"
# The host's units: the targets and services the unit orders itself after must exist.
cp -a "$(readlink -f /usr/lib/systemd/system 2>/dev/null || echo /lib/systemd/system)" \
  "$root/usr/lib/systemd/system"
cp "$unit_file" "$root/etc/systemd/system/$name"
if [[ -n "$mutation" ]]; then
  sed -i -e "$mutation" "$root/etc/systemd/system/$name"
  if cmp -s "$unit_file" "$root/etc/systemd/system/$name"; then
    echo "FAILED: the mutation '$mutation' changed nothing"
    exit 1
  fi
fi

# Stand-ins for the programs the install puts in place, and the example configuration where
# the install puts it: an Exec line naming any other path fails below.
for program in "${programs[@]}"; do
  mkdir -p "$root$(dirname "$program")"
  printf '#!/bin/sh\nexit 0\n' >"$root$program"
  chmod +x "$root$program"
done
mkdir -p "$root/etc/hvmm"
cp "$config" "$root/etc/hvmm/hvmmd.conf"

# Every absolute path an Exec line names (the program and its arguments: --config,
# --vm-process) must be one the install makes.
missing=0
while read -r path; do
  if [[ ! -e "$root$path" ]]; then
    echo "$name: $path is not a path the install makes"
    missing=1
  fi
done < <(grep -E '^Exec[A-Za-z]*=' "$root/etc/systemd/system/$name" | sed -E 's/^[^=]+=[-@:+!]*//' |
           tr ' ' '\n' | grep -E '^/' || true)
if [[ $missing -ne 0 ]]; then
  echo "FAILED: the unit names paths the install does not make"
  exit 1
fi

echo "== systemd-analyze verify $name"
status=0
messages=$(systemd-analyze verify --root="$root" "$name" 2>&1) || status=$?
if [[ -n "$messages" ]]; then
  echo "$messages"
fi
if [[ $status -ne 0 || -n "$messages" ]]; then
  echo "FAILED: systemd-analyze verify reported the above (exit status $status)"
  exit 1
fi
echo "verify: no messages"

echo "== systemd-analyze security --offline=true $name"
report=$(systemd-analyze security --offline=true --root="$root" --no-pager "$name" 2>&1) || true
echo "$report" | grep -E '^✗' || true
score=$(echo "$report" | sed -nE 's/.*Overall exposure level for [^:]+: ([0-9.]+).*/\1/p')
if [[ -z "$score" ]]; then
  echo "$report"
  echo "FAILED: no exposure score in systemd-analyze security's report"
  exit 1
fi
echo "exposure: $score (threshold $threshold)"
if ! awk -v s="$score" -v t="$threshold" 'BEGIN { exit !(s <= t) }'; then
  echo "FAILED: exposure $score is above the threshold $threshold"
  exit 1
fi
echo "PASSED: $name"
