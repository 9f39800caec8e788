#!/usr/bin/env bash
# Makes sure the programs the tests start are installed, from Debian packages.
#
# To add a dependency, add one "command:package" pair to DEPS: the command is
# looked up on PATH, and the Debian package that provides it is installed when
# it is missing. Several commands may name the same package.
#
# As root, missing packages are installed with apt-get (after one apt-get update).
# As another user, the script prints the command to run and exits non-zero.
set -euo pipefail

DEPS=(
	"gcc:gcc"               # go test -race needs cgo
	"prometheus:prometheus" # 2.42: a real remote_write sender (test/e2e)
	"promtool:prometheus"   # query client used against greenloop's API (test/e2e)
	"chromium:chromium"     # a real browser for the fleet page (test/e2e)
)

missing=()
for dep in "${DEPS[@]}"; do
	cmd=${dep%%:*}
	pkg=${dep#*:}
	if path=$(command -v "$cmd" 2>/dev/null); then
		echo "test-deps: $cmd: found at $path"
	else
		echo "test-deps: $cmd: missing (Debian package $pkg)"
		case " ${missing[*]-} " in
		*" $pkg "*) ;;
		*) missing+=("$pkg") ;;
		esac
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "test-deps: everything the tests need is installed"
	exit 0
fi

install_cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps: not root, so not installing; run as root:" >&2
	echo "  $install_cmd" >&2
	exit 1
fi

echo "test-deps: installing ${missing[*]}: $install_cmd"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

# Installing a service package may start it (e.g. prometheus on :9090). The tests
# never use fixed ports, so a running service is harmless and is left alone.
for dep in "${DEPS[@]}"; do
	cmd=${dep%%:*}
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "test-deps: $cmd is still missing after installing ${dep#*:}" >&2
		exit 1
	fi
done
echo "test-deps: installed ${missing[*]}"
