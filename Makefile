# flashsale — run `make help` for the targets.
SHELL := /bin/bash
GO    ?= go
PKGS  := ./...

.DEFAULT_GOAL := help

.PHONY: help
help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: services
services: ## make sure Redis and PostgreSQL answer on their standard ports (starting or installing them)
	@scripts/ensure-services.sh redis postgres

.PHONY: run
run: services ## run everything on :8080 with a demo sale seeded
	$(GO) run ./cmd/flashsale demo -kafka-data-dir .data/kafka

.PHONY: test
test: services ## run the whole test suite against real Redis and PostgreSQL
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

.PHONY: bench
bench: services ## side-by-side harness: raw Redis vs engine vs PostgreSQL vs HTTP, with ratios and latency (BENCH_FLAGS, e.g. -redis-cpus 1)
	$(GO) run ./bench $(BENCH_FLAGS)

.PHONY: script-cost
script-cost: ## instructions Redis spends in reserve.lua per hold, by batch size (callgrind: exact, load-independent)
	@scripts/script-cost.sh

.PHONY: bench-go
bench-go: services ## Go benchmarks: geo search, reserve handler allocations, orders consumer, burst to order
	$(GO) test -run '^$$' -bench . -benchmem ./geo
	$(GO) test -run '^$$' -bench ReserveHandler -benchtime 50000x ./api
	$(GO) test -run '^$$' -bench EndpointInProcess -benchtime 50000x ./bench
	$(GO) test -run '^$$' -bench OrdersConsumer -benchtime 20000x ./persist
	$(GO) test -run '^$$' -bench BurstToOrder -benchtime 5000x ./cmd/flashsale

.PHONY: loadtest
loadtest: ## vegeta flash sale against a running deployment (FLASHSALE_LOADTEST_TARGET, FLASHSALE_ADMIN_TOKEN)
	$(GO) run ./cmd/flashsale loadtest

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

.PHONY: build
build: ## build bin/flashsale
	$(GO) build -o bin/flashsale ./cmd/flashsale
