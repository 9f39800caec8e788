#!/usr/bin/env bash
# Makes sure the programs the tests start are installed, from Debian packages.
#
# To add a dependency, add one "command:package" pair to DEPS: the command is
# looked up on PATH (or, when it starts with "/", the file must exist), and the
# Debian package that provides it is installed when it is missing. Several
# commands may name the same package.
#
# As root, missing packages are installed with apt-get (after one apt-get update).
# As another user, the script prints the command to run and exits non-zero.
set -euo pipefail

DEPS=(
	"gcc:gcc"               # go test -race needs cgo
	"prometheus:prometheus" # 2.42: a real remote_write sender (test/e2e)
	"promtool:prometheus"   # query client used against greenloop's API (test/e2e)
	"chromium:chromium"     # a real browser for the fleet page (test/e2e)
	"clickhouse-server:clickhouse-server" # the ClickHouse backend's tests (ingest/clickhouse)
	"clickhouse-client:clickhouse-client" # the ClickHouse ingest benchmark's peer
	# ZooKeeper 3.8 (with the Java runtime it depends on): ClickHouse 18.16 has
	# no clickhouse-keeper, and its Replicated tables need ZooKeeper; the
	# replicated-cluster tests of ingest/clickhouse start their own on a free port
	"/usr/share/java/zookeeper.jar:zookeeper"
	"java:zookeeper"
	"snmpsimd:snmpsim"      # serves real PDU/UPS recordings (collectors/pdu)
	"snmpwalk:snmp"         # cross-checks of the SNMP collector
	"ipmi_sim:openipmi"     # a simulated BMC (collectors/ipmi)
	"ipmitool:ipmitool"     # cross-checks of the IPMI collector
	"/usr/include/OpenIPMI/serv.h:libopenipmi-dev" # builds ipmi_sim's DCMI power module in the IPMI tests
	"mosquitto:mosquitto"   # a real MQTT broker (collectors/edge)
	"mosquitto_pub:mosquitto-clients"
	"pdftotext:poppler-utils" # reads back the EU report's PDF (accounting/report)
)

# have CHECK: a command on PATH, or an existing file when CHECK is a path.
have() {
	case $1 in
	/*) [ -e "$1" ] && echo "$1" ;;
	*) command -v "$1" 2>/dev/null ;;
	esac
}

missing=()
for dep in "${DEPS[@]}"; do
	cmd=${dep%%:*}
	pkg=${dep#*:}
	if path=$(have "$cmd"); then
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

# Installing a service package may start it (prometheus on :9090, mosquitto on
# :1883, clickhouse-server on :9000; Debian's zookeeper is not started). The tests start their own instances on
# free ports, so a running service is harmless and is left alone.
for dep in "${DEPS[@]}"; do
	cmd=${dep%%:*}
	if ! have "$cmd" >/dev/null; then
		echo "test-deps: $cmd is still missing after installing ${dep#*:}" >&2
		exit 1
	fi
done
echo "test-deps: installed ${missing[*]}"
