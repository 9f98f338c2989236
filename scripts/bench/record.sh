#!/usr/bin/env bash
# Runs one benchmark and keeps its raw output in bench-results/NAME.txt, headed by what was run,
# when, on which commit and on which machine: every figure the README gives comes from one of these.
#
#   scripts/bench/record.sh NAME COMMAND...   e.g. scripts/bench/record.sh end-to-end scripts/bench/end-to-end.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
name="$1"; shift
mkdir -p bench-results
out="bench-results/$name.txt"
# "uncommitted changes" means code: the outputs in bench-results/ (this one is being written) are not.
{
  echo "\$ $*"
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD)$(git diff --quiet -- . ':!bench-results' || echo ' (with uncommitted changes)')"
  echo "# $(nproc) cores: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo); $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(uname -sr)"
  echo
} > "$out"
"$@" 2> >(grep -v '^generating\|WARNING: Running pip' >&2) | tee -a "$out"
