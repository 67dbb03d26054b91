# Cairn: `make run` starts a node on the defaults; `make test` installs what
# the tests need (if missing) and runs every test.

GO          ?= go
BIN         := bin/cairn
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
TOOLS       := $(CURDIR)/.cache/bin
STATICCHECK := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.8.2
VERSITYGW   := $(TOOLS)/versitygw
VERSITYGW_VERSION := v1.8.0
PROTOC_GEN_GO_VERSION := v1.36.12
# Seconds of fuzzing per fuzz target in `make fuzz`; `make test` runs the
# seed corpus only.
FUZZTIME    ?= 60s

export CGO_ENABLED ?= 0

.PHONY: all build run cluster cluster-stop cluster-clean test check fmt vet staticcheck bench fuzz generate clean test-deps

all: build

## build: the static cairn binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/cairn

## run: a single node on the embedded defaults (data in ./cairn-data,
## HTTP on 127.0.0.1:4001, Raft on 127.0.0.1:4002)
run: build
	./$(BIN) serve

## cluster: a local three-node cluster on loopback (HTTP 4001/4011/4021)
cluster: build
	scripts/cluster.sh start

## cluster-stop: stop it (data stays in ./cluster-data); cluster-clean: and delete it
cluster-stop:
	scripts/cluster.sh stop

cluster-clean:
	scripts/cluster.sh clean

## test: static checks, unit tests with the race detector, then the
## integration tests against the real binary
test: test-deps check build
	CAIRN_BINARY=$(CURDIR)/$(BIN) CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m ./...
	CAIRN_BINARY=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 20m -tags integration ./tests/...

## test-deps: install what the tests need when it is missing
test-deps: $(STATICCHECK) $(VERSITYGW)
	@command -v gcc >/dev/null || (apt-get update && apt-get install -y gcc)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql)

# versitygw: a real S3 server over a directory, for the backup tests.
$(VERSITYGW):
	GOBIN=$(TOOLS) CGO_ENABLED=0 $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

$(STATICCHECK):
	GOBIN=$(TOOLS) CGO_ENABLED=0 $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

check: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./tests/...

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags integration ./tests/...

## bench: a real single node and three-node cluster on loopback, driven
## over HTTP, then a backup of a BENCH_BACKUP_SIZE database to versitygw
## (time per phase, RSS growth) (table on stdout, JSON in bench.json),
## after the Go micro-benchmarks of the hot paths
BENCH_DURATION ?= 5s
BENCH_RUNS ?= 3
BENCH_BACKUP_SIZE ?= 1GiB
bench: build $(VERSITYGW)
	$(GO) test -run '^$$' -bench . -benchmem ./statemachine/... ./cluster/
	$(GO) run ./tests/bench -binary $(BIN) -duration $(BENCH_DURATION) -runs $(BENCH_RUNS) -backup-size $(BENCH_BACKUP_SIZE) -json bench.json

## fuzz: fuzz the request decoder and the migration splitter for FUZZTIME each
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeStatements -fuzztime $(FUZZTIME) ./server/
	$(GO) test -run '^$$' -fuzz FuzzSplit -fuzztime $(FUZZTIME) ./migrations/

## generate: regenerate the protobuf code (needs protoc)
generate:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	PATH=$(TOOLS):$$PATH $(GO) generate ./...

clean:
	rm -rf bin .cache/bin
