GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)

.PHONY: test vet race demo fmt

# The README's test command: vet, then every test with the race detector,
# against the local PostgreSQL (started first if it is down), SQLite, and
# NATS servers the tests start (the binary installed first if missing), and
# the TypeScript compiler of the HTTP client example (from npm, pinned), and
# the headless Chromium of the web console's browser tests and the PgBouncer
# the suite runs through (Debian's).
# Tests wait on progress, not on fixed times; the generous -timeout is the
# last resort of a test that hangs.
test: vet
	./scripts/ensure-postgres.sh
	./scripts/ensure-nats.sh
	./scripts/ensure-node-deps.sh
	./scripts/ensure-chromium.sh
	./scripts/ensure-pgbouncer.sh
	$(GO) test -race -count=1 -timeout 30m ./...

vet:
	$(GO) vet ./...

demo:
	$(GO) run ./cmd/meowmx demo

fmt:
	gofmt -w $$(git ls-files '*.go')
