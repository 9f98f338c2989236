#!/usr/bin/env bash
# 2,000 orgs over three replicas of the release binary on PostgreSQL
# (crates/factorwatch/benches/cluster.rs); the raw output goes to bench-results/cluster.txt, where
# docs/cluster.md takes its figures from.
#
#   scripts/bench/cluster.sh            (environment: BENCH_ORGS, BENCH_STEADY_S, FACTORWATCH_TEST_POSTGRES)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release -p factorwatch
out=bench-results/cluster.txt
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD) $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
  cargo bench -q -p factorwatch --bench cluster 2>/dev/null
} | tee "$out"
