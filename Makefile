# Targets for developers and CI; `make help` lists them. .ci/run calls `make test`.
SHELL := /bin/bash
GO ?= go
# Go: at least go.mod's toolchain line (security fixes), never a downgrade of a newer Go.
# GOTOOLCHAIN=auto (local+auto) runs the machine's Go when it is that new, else fetches that
# toolchain from the module proxy once. A machine whose default is local (go env -w, or a
# repackaged Go's go.env) gets auto for make only; GOTOOLCHAIN set in the environment or on
# the command line, and any other default, are kept; go-version stops on a Go too old.
GO_MIN := $(shell sed -n 's/^toolchain go//p' go.mod)
ifeq ($(origin GOTOOLCHAIN),undefined)
# (`go env GOTOOLCHAIN` alone never switches toolchains, so this downloads nothing.)
ifeq ($(shell $(GO) env GOTOOLCHAIN 2>/dev/null),local)
export GOTOOLCHAIN := auto
endif
endif
STATICCHECK_VERSION := v0.8.2
# An execution count, not a duration: a duration races the fuzz coordinator's deadline
# on a loaded machine and fails with a bare "context deadline exceeded" (golang/go#75804).
FUZZTIME ?= 100000x
# Extra arguments for `make demo`, e.g. ARGS="--http-addr 127.0.0.1:8080 --rate 5".
ARGS ?=
# package:FuzzTarget pairs run by `make fuzz`.
FUZZ_TARGETS := ./notifier/decode:FuzzPayload ./notifier/listen:FuzzPayloadID ./notifier/ws:FuzzParseQuery \
	./notifier/socketio:FuzzParseEIOPayload ./notifier/socketio:FuzzParseSIOPacket ./notifier/socketio:FuzzVerifyPID \
	./internal/auth:FuzzVerify ./internal/auth:FuzzJWKS ./notifier/fleet:FuzzDecode

.PHONY: help test check unit fuzz lint vuln bench npm build demo go-version

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

test: npm lint vuln unit fuzz ## everything CI runs: lint, govulncheck, race tests, short fuzzing

npm: ## install the pinned socket.io-client and playwright-core used by tests
	@if [ -f testdata/sioclient/package-lock.json ]; then npm ci --prefix testdata/sioclient --no-audit --no-fund --loglevel=error; fi
	@if [ -f testdata/browser/package-lock.json ]; then npm ci --prefix testdata/browser --no-audit --no-fund --loglevel=error; fi

go-version: ## fail unless the Go that make runs is at least go.mod's toolchain line
	@v=$$($(GO) env GOVERSION) || exit 1; v=$${v#devel }; v=$${v#go}; v=$${v%%[-+ ]*}; \
	if [ "$$(printf '%s\n' "$(GO_MIN)" "$$v" | sort -V | head -n1)" != "$(GO_MIN)" ]; then \
		echo "go$$v is older than go$(GO_MIN) (go.mod's toolchain line, security fixes); GOTOOLCHAIN=$$($(GO) env GOTOOLCHAIN) keeps it: run with GOTOOLCHAIN=auto or install a newer Go" >&2; exit 1; fi

lint: go-version ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

vuln: go-version ## govulncheck ./... against a database built from golang.org/x/vulndb
	bash .ci/govulncheck

unit: go-version ## go test -race ./...
	$(GO) test -race -count=1 -timeout 15m ./...

fuzz: go-version ## run each fuzz target for FUZZTIME
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

bench: go-version ## benchmarks (figures, not assertions)
	$(GO) test -run '^$$' -bench . -benchmem ./...

build: go-version ## build the notifier binary into ./bin
	$(GO) build -o bin/notifier ./cmd/notifier

# Built, not `go run`: go run exits 1 after Ctrl-C even when the demo stops cleanly.
demo: build ## install PostgreSQL if missing (.ci/deps), then run the demo with ARGS
	bash .ci/deps postgres
	bin/notifier demo $(ARGS)
