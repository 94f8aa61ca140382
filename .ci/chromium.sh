#!/usr/bin/env bash
# Make sure a headless-capable `chromium` is on PATH for the report's browser test (tests/report/test_report.py).
#
#   .ci/chromium.sh        # no output on success; exit status non-zero (with the reason on stderr) on failure
#
# Idempotent: does nothing when `chromium` is already on PATH. Otherwise installs the Debian package `chromium`
# with apt-get (needs root); apt's output is kept in a temporary log and printed to stderr only if it fails.
set -euo pipefail

say() { echo "chromium.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

command -v chromium >/dev/null 2>&1 && exit 0
[[ "$(id -u)" == 0 ]] || die "chromium not found and not root: install it (apt-get install chromium)"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } \
    >"$log" 2>&1; then
  cat "$log" >&2
  die "apt-get install chromium failed"
fi
command -v chromium >/dev/null 2>&1 || die "chromium installed but not on PATH"
