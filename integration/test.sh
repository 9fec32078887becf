#!/usr/bin/env bash
# THE test command: installs what is missing, then runs formatting, lints,
# the docker-feature build check and every test (unit and integration, which
# start real PostgreSQL and MariaDB servers). Fails on any failure, and when
# a server started by this run is still running afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./integration/install.sh

# Every cluster of this run lives under one base dir, so leftovers are easy to
# find afterwards: a server's command line or working dir is inside it.
run_base="$(mktemp -d "${TMPDIR:-/tmp}/shardgate-test-run.XXXXXX")"
chmod 755 "$run_base" # servers may run as another user (postgres)
export SHARDGATE_TMPDIR="$run_base"

results=()
status=0
log="$run_base/cargo-test.log"

step() {
    local name="$1"
    shift
    echo "=== $name: $*"
    if "$@"; then
        results+=("ok    $name")
    else
        results+=("FAIL  $name")
        status=1
    fi
}

run_tests() {
    # Keep the output for the summary; pipefail gives cargo's status.
    cargo test 2>&1 | tee "$log"
}

step fmt cargo fmt --check
step clippy cargo clippy --all-targets -- -D warnings
step docker-check cargo check --features docker
step test run_tests

# Processes started by this run that are still there.
leftovers() {
    local p pid cwd
    for p in /proc/[0-9]*; do
        pid="${p#/proc/}"
        cwd="$(readlink "$p/cwd" 2>/dev/null || true)"
        if [[ "$cwd" == "$run_base"* ]] \
            || tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "$run_base/"; then
            echo "$pid"
        fi
    done
}

left=""
for _ in $(seq 1 50); do
    left="$(leftovers)"
    [ -z "$left" ] && break
    sleep 0.2
done
if [ -n "$left" ]; then
    echo "=== leftover processes from this run:"
    # shellcheck disable=SC2086
    ps -o pid,ppid,user,cmd -p $(echo $left | tr ' ' ',') || true
    for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
    results+=("FAIL  no leftover servers")
    status=1
else
    results+=("ok    no leftover servers")
fi

passed=0 failed=0 ignored=0
if [ -f "$log" ]; then
    while read -r p f i; do
        passed=$((passed + p)) failed=$((failed + f)) ignored=$((ignored + i))
    done < <(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$log")
fi
rm -rf "$run_base"

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
echo "tests: $passed passed, $failed failed, $ignored skipped"
exit "$status"
