#!/usr/bin/env bash
# The detections on a simulated month of 10,000 users and their latency on the real daemon
# (crates/factorwatch/benches/detections.rs); the raw output goes to bench-results/detections.txt,
# where docs/detections.md takes its figures from.
#
#   scripts/bench/detections.sh            (environment: see the bench's header, e.g. BENCH_USERS)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench-results/detections.txt
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD) $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
  cargo bench -q -p factorwatch --bench detections 2>/dev/null
} | tee "$out"
