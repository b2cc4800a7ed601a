GO ?= go
BIN := bin
# AGENT_PLATFORMS: where zac runs (agent packs, `make cross`)
AGENT_PLATFORMS := linux/amd64 linux/arm64 windows/amd64 darwin/arm64

.PHONY: all build agents cross quickstart test test-short man fuzz bench vet clean

all: build

# --version prints the commit and the build date (Go's own VCS stamp is
# off where GOFLAGS has -buildvcs=false, so both are passed in).
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -modified)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X zonekit/internal/version.Commit=$(COMMIT) -X zonekit/internal/version.BuildDate=$(BUILD_DATE)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

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

## test: vet, then every test (unit, end-to-end testscript, interop) with the race detector
test: cross
	$(GO) vet ./...
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

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

clean:
	rm -rf $(BIN) demo
