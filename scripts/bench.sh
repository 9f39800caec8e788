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
