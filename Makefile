GO ?= go
BIN := bin
# AGENT_PLATFORMS: where zac runs (agent packs, `make cross`)
AGENT_PLATFORMS := linux/amd64 linux/arm64 windows/amd64 darwin/arm64

.PHONY: all build agents cross quickstart test test-short man fuzz bench vet clean install deb lint

PROGRAMS := zman zac zconfigure pbserv
# Where 'make install' puts things: DESTDIR stages them (packages, tests),
# PREFIX is where they will live.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/vendor-completions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
# systemd reads units from /usr/local/lib/systemd/system too.
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install

all: build

# --version prints the commit and the build date (Go's own VCS stamp is
# off where GOFLAGS has -buildvcs=false, so both are passed in).
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -modified)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X zonekit/internal/version.Commit=$(COMMIT) -X zonekit/internal/version.BuildDate=$(BUILD_DATE)
# GOBUILDFLAGS and EXTRA_LDFLAGS: more for 'make build' and 'make install'
# (packaging/deb/build.sh strips, sets the version and -trimpath).
GOBUILDFLAGS ?=
EXTRA_LDFLAGS ?=

build:
	$(GO) build $(GOBUILDFLAGS) -ldflags "$(LDFLAGS) $(EXTRA_LDFLAGS)" -o $(BIN)/ ./cmd/...

## agents: cross-build zac for the agent install packs (zconfigure -c CreateExtractorPacks --zac-dir bin/agents)
agents:
	@for p in $(AGENT_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		echo "zac $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(BIN)/agents/zac-$$os-$$arch$$ext ./cmd/zac || exit 1; \
	done

## cross: zac builds and vets (with its tests) for every agent platform;
## OS-specific code sits behind build tags, so only this catches a break
cross:
	@pkgs=$$($(GO) list -deps ./cmd/zac | grep '^zonekit/'); \
	for p in $(AGENT_PLATFORMS); do \
		echo "cross $$p"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -o /dev/null ./cmd/zac || exit 1; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet $$pkgs || exit 1; \
	done

## quickstart: build, create a demo zone in ./demo, start it, register an agent, show the zone
quickstart:
	./scripts/quickstart.sh

## test: vet and staticcheck, then every test (unit, end-to-end testscript,
## interop, packaging) with the race detector
test: cross lint
	$(GO) test -race -count=1 -timeout 9m ./...

test-short:
	$(GO) test -short -count=1 ./...

## man: regenerate docs/man and docs/completion from the command trees
man:
	$(GO) run ./scripts/genman docs

## fuzz: a short run of every fuzz target
fuzz:
	./scripts/fuzz.sh 20s

## bench: performance benchmarks against the issue targets
bench:
	./scripts/bench/run.sh

# STATICCHECK: pinned; 'go run pkg@version' fetches it through the module proxy.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2

## lint: go vet, gofmt and staticcheck, all clean
lint: vet
	$(STATICCHECK) ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

## install: the programs, their man pages, shell completions and systemd
## units (packaging/systemd, with @BINDIR@ set) under DESTDIR/PREFIX
install: build
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 0755 $(addprefix $(BIN)/,$(PROGRAMS)) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0644 docs/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	@for p in $(PROGRAMS); do \
		$(INSTALL) -m 0644 docs/completion/$$p.bash $(DESTDIR)$(BASHCOMPDIR)/$$p && \
		$(INSTALL) -m 0644 docs/completion/_$$p $(DESTDIR)$(ZSHCOMPDIR)/_$$p && \
		$(INSTALL) -m 0644 docs/completion/$$p.fish $(DESTDIR)$(FISHCOMPDIR)/$$p.fish || exit 1; \
	done
	@for u in packaging/systemd/*.service.in; do \
		sed 's|@BINDIR@|$(BINDIR)|g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) || exit 1; \
	done
	@echo "installed under $(DESTDIR)$(PREFIX); the zone server and preboot units run as the system user zonekit"

## deb: the Debian packages zonekit-server and zonekit-pbserv in $(BIN)/deb
## (packaging/deb/build.sh; VERSION=... sets their version)
deb:
	./packaging/deb/build.sh $(BIN)/deb

## clean: stop the quickstart's zone server, then delete the builds and the demo
clean:
	@if [ -d demo/zone ]; then DEMO_DIR=$$PWD/demo ./scripts/quickstart.sh --stop; fi
	rm -rf $(BIN) demo
