# Aegis — see README.md. Every target works on a fresh Debian/Ubuntu machine
# with Go installed; `make test` installs and starts what the tests need.

GO        ?= go
BIN       := bin/aegis-agent
PREFIX    ?= /usr/local
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/aegis-backup/aegis/reconcile/observe.Version=$(VERSION)

.PHONY: all build test unit e2e lint bench demo install deps clean man completion monitoring

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/aegis-agent

# Every test, unit and end to end. hack/deps.sh installs the tools the tests
# use (tar, zstd, gzip, openssl, age) when they are missing; hack/test-env.sh
# installs and starts the real servers (hack/server-*.sh) on 127.0.0.1 for
# the duration of the run.
test: deps build
	./hack/test-env.sh $(GO) test -count=1 -timeout 45m ./...
	./hack/check-monitoring.sh

unit:
	$(GO) test -count=1 -short ./api/... ./reconcile/... ./drivers/...

e2e: deps build
	./hack/test-env.sh $(GO) test -count=1 -timeout 45m ./test/e2e/...

# gofmt, go vet, a tidy go.mod and staticcheck at a pinned version (run
# through the module proxy, so nothing is installed). .ci/run runs it before
# the tests.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(GO) run $(STATICCHECK) ./...

# promtool check rules and the alert rules' unit tests (installs promtool
# from the distribution's prometheus package when missing).
monitoring:
	./hack/check-monitoring.sh

# Go benchmarks, then the side-by-side comparison of hack/bench/run.sh
# (docs/performance.md).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./...
	./hack/bench/run.sh

demo: build
	./hack/demo.sh

deps:
	./hack/deps.sh
	./hack/deps-packaging.sh
	./hack/deps-browser.sh

# Man pages and shell completions, generated from the command definitions
# (SOURCE_DATE_EPOCH keeps the pages' date reproducible).
man: build
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) $(BIN) man --dir bin/man/man1

completion: build
	mkdir -p bin/completion
	$(BIN) completion bash > bin/completion/aegis-agent.bash
	$(BIN) completion zsh > bin/completion/_aegis-agent
	$(BIN) completion fish > bin/completion/aegis-agent.fish

install: build man completion
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/aegis-agent
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 bin/man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -D -m 0644 bin/completion/aegis-agent.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/aegis-agent
	install -D -m 0644 bin/completion/_aegis-agent $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_aegis-agent
	install -D -m 0644 bin/completion/aegis-agent.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/aegis-agent.fish
	install -d -m 0755 $(DESTDIR)/etc/aegis
	install -d -m 0750 $(DESTDIR)/etc/aegis/policies.d
	install -d -m 0700 $(DESTDIR)/etc/aegis/keys $(DESTDIR)/etc/aegis/secrets
	install -d -m 0700 $(DESTDIR)/var/lib/aegis
	install -d -m 0750 $(DESTDIR)/var/log/aegis
	install -d -m 0755 $(DESTDIR)/etc/systemd/system
	sed 's|/usr/local/bin/aegis-agent|$(PREFIX)/bin/aegis-agent|g' manifests/systemd/aegis-agent.service > $(DESTDIR)/etc/systemd/system/aegis-agent.service
	chmod 0644 $(DESTDIR)/etc/systemd/system/aegis-agent.service

clean:
	rm -rf bin
