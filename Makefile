# Targets for developers and CI; `make help` lists them. .ci/run calls `make test`.
SHELL := /bin/bash
GO ?= go
# The toolchain go.mod names (security fixes over the machine's Go); the go command
# fetches it from the module proxy once.
export GOTOOLCHAIN := go1.26.10
STATICCHECK_VERSION := v0.8.2
# An execution count, not a duration: a duration races the fuzz coordinator's deadline
# on a loaded machine and fails with a bare "context deadline exceeded" (golang/go#75804).
FUZZTIME ?= 100000x
# package:FuzzTarget pairs run by `make fuzz`.
FUZZ_TARGETS := ./notifier/decode:FuzzPayload ./notifier/listen:FuzzPayloadID ./notifier/ws:FuzzParseQuery \
	./notifier/socketio:FuzzParseEIOPayload ./notifier/socketio:FuzzParseSIOPacket ./notifier/socketio:FuzzVerifyPID \
	./internal/auth:FuzzVerify ./internal/auth:FuzzJWKS ./notifier/fleet:FuzzDecode

.PHONY: help test check unit fuzz lint vuln bench npm build

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

test: npm lint vuln unit fuzz ## everything CI runs: lint, govulncheck, race tests, short fuzzing

npm: ## install the pinned socket.io-client and playwright-core used by tests
	@if [ -f testdata/sioclient/package-lock.json ]; then npm ci --prefix testdata/sioclient --no-audit --no-fund --loglevel=error; fi
	@if [ -f testdata/browser/package-lock.json ]; then npm ci --prefix testdata/browser --no-audit --no-fund --loglevel=error; fi

lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

vuln: ## govulncheck ./... against a database built from golang.org/x/vulndb
	bash .ci/govulncheck

unit: ## go test -race ./...
	$(GO) test -race -count=1 -timeout 15m ./...

fuzz: ## run each fuzz target for FUZZTIME
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

bench: ## benchmarks (figures, not assertions)
	$(GO) test -run '^$$' -bench . -benchmem ./...

build: ## build the notifier binary into ./bin
	$(GO) build -o bin/notifier ./cmd/notifier
