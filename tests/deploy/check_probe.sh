#!/usr/bin/env bash
# The DaemonSet's probes against this build's real hvmmd: its readiness and liveness commands
# (read from the manifest, with this build's hvmm for /usr/bin/hvmm and a temporary socket for
# the configured one) must succeed while hvmmd serves, and fail once it has stopped.
#
#   check_probe.sh MANIFEST HVMMD HVMM PYTHON
set -euo pipefail

manifest="${1:?usage: check_probe.sh MANIFEST HVMMD HVMM PYTHON}"
hvmmd="$2"
hvmm="$3"
python="$4"
dir=$(mktemp -d)
socket="$dir/hvmmd.sock"
daemon=""
cleanup() {
  [[ -n "$daemon" ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

# One probe command a line, its words separated by tabs.
probes=$("$python" -c '
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc.get("kind") == "DaemonSet":
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for what in ("readinessProbe", "livenessProbe"):
                print(what + "\t" + "\t".join(container[what]["exec"]["command"]))
' "$manifest") || { echo "SKIPPED: cannot read the probes (python3-yaml missing?)"; exit 77; }

run_probes() {
  local expect=$1 failed=0
  while IFS=$'\t' read -r what program rest; do
    [[ "$program" == /usr/bin/hvmm ]] || { echo "FAILED: $what runs $program, not /usr/bin/hvmm"; return 1; }
    # shellcheck disable=SC2206
    local words=($rest)
    for i in "${!words[@]}"; do
      if [[ "${words[$i]}" == "--socket" ]]; then words[$((i + 1))]="$socket"; fi
    done
    local status=0
    "$hvmm" "${words[@]}" >"$dir/out" 2>&1 || status=$?
    echo "$what (hvmmd $2): exit $status: $(head -1 "$dir/out")"
    if [[ "$expect" == ok && $status -ne 0 ]] || [[ "$expect" == fail && $status -eq 0 ]]; then
      failed=1
    fi
  done <<<"$probes"
  return $failed
}

# An empty configuration of its own: not the host's /etc/hvmm/hvmmd.conf.
: >"$dir/hvmmd.conf"
"$hvmmd" --config "$dir/hvmmd.conf" --socket "$socket" --state-dir "$dir/state" >"$dir/log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
  [[ -S "$socket" ]] && break
  sleep 0.1
done
if [[ ! -S "$socket" ]]; then
  cat "$dir/log"
  echo "FAILED: hvmmd made no socket in 10 s"
  exit 1
fi
run_probes ok serving || { echo "FAILED: a probe fails while hvmmd serves"; exit 1; }
kill -TERM "$daemon"
wait "$daemon" || true
daemon=""
run_probes fail stopped || { echo "FAILED: a probe passes with hvmmd stopped"; exit 1; }
echo "PASSED: both probes pass while hvmmd serves and fail once it stopped"
