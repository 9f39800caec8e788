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

# Floor collectors (issue targets): 1,000 simulated Redfish BMCs with 0.2-2 s
# per request and 2 % that never answer, refreshed cold (login) then warm
# (sessions reused); 500 SNMP PDUs of 24 outlets, first with a minimal Go SNMP
# agent (the collector's own cost), then served by snmpsimd (the Debian
# simulator, whose CPU is the limit). FLOORBENCH=0 skips them.
if [ "${FLOORBENCH:-1}" != 0 ]; then
	"$GO" run ./test/bench/bmcbench -n 1000 -timeout 10s
	"$GO" run ./test/bench/pdubench -devices 500 -agent go -concurrency 32
	if command -v snmpsimd >/dev/null; then
		"$GO" run ./test/bench/pdubench -devices 500 -agent snmpsim -concurrency 16 -timeout 60s -rounds 1
	else
		echo "bench.sh: no snmpsimd (apt-get install snmpsim): skipping the snmpsimd PDU run" >&2
	fi
fi

# ClickHouse: greenloop's remote_write ingest into ClickHouse vs clickhouse-client
# on the same 6 M rows (see docs/benchmarks.md, "ClickHouse backend"), sent
# as Prometheus' remote-write shards send a backlog (2,000 samples a request):
# the default durable mode with 100 shards (two Prometheus servers at their
# default queue_config, or one with max_shards: 100) and with 50 (one), then
# the Buffer table. CHBENCH=0 skips it.
if [ "${CHBENCH:-1}" != 0 ]; then
	if command -v clickhouse-client >/dev/null; then
		mkdir -p bin
		"$GO" run ./test/bench/chbench -rounds 3 -samples 600 -senders 100 -steps-per-request 20 -out bin/chbench-results.json
		"$GO" run ./test/bench/chbench -rounds 3 -samples 600 -senders 50 -steps-per-request 10 -out bin/chbench-one-prometheus.json
		"$GO" run ./test/bench/chbench -rounds 3 -samples 600 -ch-buffer -out bin/chbench-buffer.json
	else
		echo "bench.sh: no clickhouse-client (apt-get install clickhouse-client clickhouse-server): skipping test/bench/chbench" >&2
	fi
fi

# Full-year EU report (issue #6 target: a site with 10,000 series at 15 s,
# report in under 10 s from the embedded store): writes a year of hourly
# rollups exactly as the rollup job writes them (series rollups and group
# sums; 21 billion raw samples cannot be written here) plus the raw samples of
# the year's last 3 hours, then times GET /api/v1/reports/eu (json, pdf, xlsx)
# against a real `greenloop serve` and checks the energy and completeness
# against the synthetic totals (see docs/benchmarks.md). About 3-6 minutes and
# 0.7 GB of temporary disk. REPORTBENCH=0 skips it; REPORTBENCH_FLAGS adds
# flags (go run ./test/bench/reportbench -h).
if [ "${REPORTBENCH:-1}" != 0 ]; then
	read -r -a rb_flags <<<"${REPORTBENCH_FLAGS:-}"
	mkdir -p bin
	"$GO" run ./test/bench/reportbench -out bin/reportbench-results.json "${rb_flags[@]}"
fi
