# make test   installs missing dependencies (as root) and runs every test with the race detector
# make run    starts the local demo (Dendrite + baresip phone + gateway), see scripts/demo.sh
# make bench  runs the benchmarks
# make fuzz   runs each fuzz target briefly
GO ?= go
TEST_TIMEOUT ?= 30m
FUZZTIME ?= 20s
PKGS ?= ./...

.PHONY: test deps check-deps run bench fuzz vet

# As root, the tests run in a private network namespace with only loopback (unshare -n): every
# packet the real peers (Dendrite, baresip, sipp, Chromium, the gateway) send stays inside it.
GO_TEST = $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
test: check-deps
	@if [ "$$(id -u)" = 0 ] && command -v unshare >/dev/null && [ -z "$$GATEWAY_NETNS" ]; then \
		echo "make: running the tests in a private network namespace (loopback only)"; \
		GATEWAY_NETNS=1 unshare --net sh -c 'ip link set lo up && $(GO_TEST)'; \
	else \
		$(GO_TEST); \
	fi

# Installs only when something is missing; without root it just reports what is missing.
check-deps:
	@if ! scripts/check-deps.sh >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then scripts/install-deps.sh; \
		else scripts/check-deps.sh || echo "make: dependencies missing: run 'sudo scripts/install-deps.sh' (or GATEWAY_SKIP_PEERS=1 to skip peer tests)"; fi; \
	fi

deps:
	scripts/install-deps.sh

vet:
	$(GO) vet $(PKGS)

run: check-deps
	scripts/demo.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

# Every Fuzz* function, one at a time (go test allows one -fuzz target per run).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done
