#!/usr/bin/env bash
# Runs the Go benchmarks (functions Benchmark* in *_bench_test.go files) with
# allocation counts. Extra arguments go to `go test`, e.g. scripts/bench.sh -count 5.
# Usage: scripts/bench.sh [go test flags...]   (packages: PKGS, default ./...)
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
read -r -a pkgs <<<"${PKGS:-./...}"
"$GO" test -run '^$' -bench . -benchmem "$@" "${pkgs[@]}"
