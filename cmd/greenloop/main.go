// Command greenloop is greenloop's one binary: `greenloop serve` runs the
// server (ingest, the store, the Prometheus query API, accounting and reports,
// the fleet page); `agent` and `collect` read the hardware; `report` computes
// emissions, KPIs and the EU report from the store; `migrate` moves the
// embedded store's history into ClickHouse; `token` and `site` manage the
// bearer tokens and the sites kept in ClickHouse.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `greenloop measures the energy of datacenter and edge sites and turns it into carbon and efficiency figures.

Usage:
  greenloop serve [flags]     run the server (see greenloop serve -h)
  greenloop agent --config FILE
                              run the site agent: poll, serve /metrics, push to the server
  greenloop collect --once --config FILE [--format json|prom]
                              poll every agent target once and print the readings
  greenloop report emissions|kpis|eu --config FILE --site ID ...
                              emissions, KPIs or the EU report from the store (no server needed)
  greenloop migrate --from tsdb:DIR --to clickhouse --config FILE
                              copy the embedded store's history into ClickHouse (resumable)
  greenloop token add|list|revoke|import --config FILE ...
                              manage the bearer tokens kept in ClickHouse (auth.store clickhouse)
  greenloop site add|list|remove|import --config FILE ...
                              manage the sites kept in ClickHouse (sites_store clickhouse)
  greenloop version           print the version

`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "agent":
		err = runAgent(ctx, args[1:], stdout, stderr)
	case "collect":
		err = runCollect(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], stdout, stderr)
	case "report":
		err = runReport(ctx, args[1:], stdout, stderr)
	case "token":
		err = runToken(ctx, args[1:], stdout, stderr)
	case "site":
		err = runSite(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "greenloop", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "greenloop: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "greenloop %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
