#!/usr/bin/env bash
# Runs the Go benchmarks (functions Benchmark* in *_bench_test.go files) with
# allocation counts. Extra arguments go to `go test`, e.g. scripts/bench.sh -count 5.
# Usage: scripts/bench.sh [go test flags...]   (packages: PKGS, default ./...)
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
read -r -a pkgs <<<"${PKGS:-./...}"
"$GO" test -run '^$' -bench . -benchmem "$@" "${pkgs[@]}"

# Side-by-side system benchmark: greenloop vs Prometheus 2.x on the same
# remote_write load (ingest samples/s, memory per series, disk bytes per
# sample, a 24h range query); see docs/benchmarks.md. Takes ~10 minutes.
# INGESTBENCH=0 skips it; INGESTBENCH_FLAGS adds flags (go run ./test/bench/ingestbench -h).
if [ "${INGESTBENCH:-1}" != 0 ]; then
	if command -v prometheus >/dev/null; then
		read -r -a ib_flags <<<"${INGESTBENCH_FLAGS:-}"
		"$GO" run ./test/bench/ingestbench -rounds 3 -out bench-results.json "${ib_flags[@]}"
	else
		echo "bench.sh: no prometheus binary (apt-get install prometheus): skipping test/bench/ingestbench" >&2
	fi
fi

# Agent overhead: greenloop's rapl + hwmon collection vs node_exporter's rapl
# and hwmon collectors on the same fixture sysfs tree (CPU per collection, RSS),
# the agent's /metrics scrape, and the footprint of rapl + hwmon + 8 mock GPUs
# polled every second (60 s); see docs/benchmarks.md, section "Agent".
# AGENTBENCH=0 skips it; AGENTBENCH_FLAGS adds flags (go run ./test/bench/agentbench -h).
if [ "${AGENTBENCH:-1}" != 0 ]; then
	if command -v prometheus-node-exporter >/dev/null; then
		read -r -a ab_flags <<<"${AGENTBENCH_FLAGS:-}"
		mkdir -p bin # bin/ is git-ignored
		"$GO" run ./test/bench/agentbench -out bin/agentbench-results.json "${ab_flags[@]}"
	else
		echo "bench.sh: no prometheus-node-exporter binary (apt-get install prometheus-node-exporter): skipping test/bench/agentbench" >&2
	fi
fi
