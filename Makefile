# greenloop — build, run and test. `make help` lists the targets.

GO          ?= go
# go-nvml's C headers use deprecated declarations; keep the build log readable.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations
BIN         ?= bin/greenloop
DATA_DIR    ?= .data/demo
LISTEN      ?= 127.0.0.1:8080
# staticcheck release that works with Go 1.26 (2026.2.2).
STATICCHECK_VERSION ?= v0.8.2
GOBIN_DIR   := $(shell $(GO) env GOBIN)
ifeq ($(GOBIN_DIR),)
GOBIN_DIR   := $(shell $(GO) env GOPATH)/bin
endif
STATICCHECK := $(GOBIN_DIR)/staticcheck

.PHONY: all help build run test test-deps fuzz bench fmt vet lint staticcheck clean

all: fmt vet lint build test ## fmt, vet, lint, build, test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/greenloop
	$(GO) build -o $(BIN) ./cmd/greenloop

run: build ## start the server with a simulated fleet (DATA_DIR=.data/demo, LISTEN=127.0.0.1:8080)
	@mkdir -p $(DATA_DIR)
	@echo "greenloop demo: http://$(LISTEN)/  (data in $(DATA_DIR); Ctrl-C stops it)"
	$(BIN) serve --demo --listen $(LISTEN) --data-dir $(DATA_DIR)

test: test-deps ## install what the tests need, run every test with -race, then a short fuzz pass
	$(GO) test -race -count=1 ./...
	scripts/fuzz-short.sh

test-deps: ## make sure the services the tests start are installed (Debian packages)
	scripts/test-deps.sh

fuzz: ## run every Fuzz* target for FUZZTIME (default 5s) each
	scripts/fuzz-short.sh

bench: ## run the benchmarks
	scripts/bench.sh

fmt: ## gofmt every Go file in place
	$(GO) fmt ./...

vet: ## go vet
	$(GO) vet ./...

lint: vet ## gofmt -l must be empty, go vet, staticcheck
	@files=$$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null); \
	out=$$( [ -z "$$files" ] || gofmt -l $$files); \
	if [ -n "$$out" ]; then echo "gofmt would change these files (run make fmt):"; echo "$$out"; exit 1; fi
	@$(MAKE) --no-print-directory staticcheck

staticcheck: ## run staticcheck, installing the pinned version when it is missing
	@sc=$$(command -v staticcheck || true); \
	if [ -z "$$sc" ] && [ -x "$(STATICCHECK)" ]; then sc="$(STATICCHECK)"; fi; \
	if [ -z "$$sc" ]; then \
		echo "staticcheck not found: installing honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)"; \
		if GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); then sc="$(STATICCHECK)"; \
		else echo "staticcheck could not be installed; skipping it (gofmt and go vet ran)"; exit 0; fi; \
	fi; \
	echo "$$sc ./..."; "$$sc" ./...

clean: ## remove build output and demo data
	rm -rf bin .data
