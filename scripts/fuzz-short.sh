#!/usr/bin/env bash
# Runs every Fuzz* target in the module for a short time each (FUZZTIME, default 5s),
# as a smoke pass on top of the seed corpora that plain `go test` already runs.
# Usage: scripts/fuzz-short.sh [packages...]   (default ./...)
set -euo pipefail

cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5s}
GO=${GO:-go}
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

# `go test -list` prints the matching names of each package, then a line
# "ok <package> <time>" for it; names are collected until that line.
listing=$("$GO" test -list '^Fuzz' "${pkgs[@]}")
targets=()
names=()
while IFS= read -r line; do
	case "$line" in
	Fuzz*) names+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for n in "${names[@]+"${names[@]}"}"; do targets+=("$pkg $n"); done
		names=()
		;;
	*) names=() ;;
	esac
done <<<"$listing"

if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz-short: no Fuzz* targets found"
	exit 0
fi

echo "fuzz-short: ${#targets[@]} target(s), $FUZZTIME each"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	echo "fuzz-short: $pkg $name"
	ok=0
	for attempt in 1 2 3; do
		if "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
			ok=1
			break
		fi
		# A real finding is written to testdata/fuzz and announced; a failure without
		# one (the fuzzing coordinator's own "context deadline exceeded" at the end of
		# -fuzztime on a loaded machine, when it is minimizing a new input) is retried, twice at most.
		if grep -q "Failing input written to" "$log"; then
			break
		fi
		[ "$attempt" -lt 3 ] && echo "fuzz-short: $pkg $name stopped without a failing input; running it again"
	done
	if [ "$ok" -ne 1 ]; then
		echo "fuzz-short: FAIL $pkg $name (a failing input is saved under the package's testdata/fuzz/$name)" >&2
		failed=$((failed + 1))
	fi
done
if [ "$failed" -gt 0 ]; then
	echo "fuzz-short: $failed of ${#targets[@]} target(s) failed" >&2
	exit 1
fi
echo "fuzz-short: all ${#targets[@]} target(s) passed"
