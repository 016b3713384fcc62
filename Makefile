# Stepup — everything a developer or CI runs goes through this file.
# Tools are pinned in tools/*/go.mod and installed into ./bin.

SHELL := /bin/bash
BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)
export GOFLAGS := -buildvcs=false

BUF := $(BIN)/buf
PROTOC_GEN_GO := $(BIN)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(BIN)/protoc-gen-go-grpc

# How long each fuzz target runs under `make fuzz`.
FUZZTIME ?= 30s
# Benchmark repetitions and time under `make bench`.
BENCHCOUNT ?= 1
BENCHTIME ?= 1s
# Calls per scale benchmark (a fixed count: the 100 000-key set-up runs once).
SCALEBENCHTIME ?= 3000x

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show the targets.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: tools
tools: $(BUF) $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## Install the pinned tools into ./bin.

$(BUF): tools/buf/go.mod tools/buf/go.sum
	cd tools/buf && GOBIN=$(BIN) go install tool
	@touch $@

$(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) &: tools/protoc/go.mod tools/protoc/go.sum
	cd tools/protoc && GOBIN=$(BIN) go install tool
	@touch $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)

.PHONY: generate
generate: tools ## Regenerate the Go code from the .proto files.
	$(BUF) generate

.PHONY: check-generate
check-generate: tools ## Regenerate, then fail if any generated file differs from what was there.
	@before=$$(find . -path ./bin -prune -o -name '*.pb.go' -print | sort | xargs sha256sum); \
	$(BUF) generate; \
	after=$$(find . -path ./bin -prune -o -name '*.pb.go' -print | sort | xargs sha256sum); \
	if [ "$$before" != "$$after" ] || [ -n "$$(git status --porcelain -- '*.pb.go')" ]; then \
		echo "generated code is out of date or was edited by hand; run 'make generate' and commit:"; \
		diff <(echo "$$before") <(echo "$$after") | grep '^[<>]' || true; \
		git status --porcelain -- '*.pb.go'; exit 1; \
	fi
	@echo "generated code is up to date"

.PHONY: lint
lint: tools ## go vet, gofmt, buf lint, buf format.
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(BUF) lint
	$(BUF) format -d --exit-code

.PHONY: test
test: ## Run every test with the race detector (starts a throwaway redis-server when one is installed; says what it skipped).
	bash .ci/test.sh

.PHONY: bench
bench: ## Run the benchmarks (ratios against baselines measured in the same run), then print BenchmarkCalls' x-limit table.
	@set -o pipefail; go test -run '^$$' -bench . -skip 'BenchmarkScale' -benchmem -count=$(BENCHCOUNT) -benchtime=$(BENCHTIME) ./... | tee bench.out
	@awk -f .ci/bench-table.awk bench.out

.PHONY: bench-compare
bench-compare: ## BenchmarkCalls of BASE=<revision> and of the working tree, in alternating runs (ROUNDS=4): a before/after on one machine state.
	bash .ci/bench-compare.sh $(BASE) $(or $(ROUNDS),4)

.PHONY: bench-scale
bench-scale: ## The heavy scale benchmarks (callers, distinct keys, Redis with STEPUP_REDIS_ADDR); docs/PERFORMANCE.md.
	go test -run '^$$' -bench 'BenchmarkScale' -benchtime=$(SCALEBENCHTIME) -count=$(BENCHCOUNT) -timeout 60m ./interceptor/

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each.
	@set -euo pipefail; for pkg in $$(go list ./...); do \
		targets=$$(go test -list '^Fuzz' $$pkg | { grep '^Fuzz' || true; }); \
		for target in $$targets; do \
			echo "== $$pkg $$target ($(FUZZTIME))"; \
			go test -run '^$$' -fuzz "^$$target$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

.PHONY: mutants
mutants: ## Apply the classic ECDSA bugs to internal/p256/p256.go one at a time (never writing it) and show the package's tests catch each.
	bash .ci/mutants.sh

STEPUP_LOAD_CLIENTS ?= 16
STEPUP_LOAD_SECONDS ?= 10
STEPUP_LOAD_MAX_CALLS ?= 200000

.PHONY: load
load: ## Load test on loopback TCP (STEPUP_LOAD_CLIENTS, STEPUP_LOAD_SECONDS, STEPUP_LOAD_MAX_CALLS).
	STEPUP_LOAD=1 STEPUP_LOAD_CLIENTS=$(STEPUP_LOAD_CLIENTS) STEPUP_LOAD_SECONDS=$(STEPUP_LOAD_SECONDS) \
		STEPUP_LOAD_MAX_CALLS=$(STEPUP_LOAD_MAX_CALLS) go test -run '^TestLoad$$' -count=1 -v ./interceptor/

.PHONY: demo
demo: ## Run the end-to-end demo (one process, loopback, generated keys).
	@echo "make demo: building the demo first. On a fresh machine this downloads and compiles the dependencies and prints nothing for a few minutes; later runs start in seconds."
	go run ./examples/demo

NODE_BACKEND := gateway/testdata/node-backend

.PHONY: gateway-demo
gateway-demo: ## Run stepup-gateway in front of a Node backend (installs it with npm ci on first use).
	@test -d $(NODE_BACKEND)/node_modules || npm ci --prefix $(NODE_BACKEND) --no-audit --no-fund --ignore-scripts
	@echo "make gateway-demo: building the demo and the gateway first. On a fresh machine this downloads and compiles the dependencies and prints nothing for a few minutes; later runs start in seconds."
	go run ./examples/demo -gateway

.PHONY: clean
clean: ## Remove installed tools.
	rm -rf $(BIN)
