# Junction — build, test, run. `make help` lists the targets.
GO        ?= go
BIN       ?= bin/junction
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Fuzzing budget per target: a count of inputs (about 5-15 s each here), not
# a duration. With a duration, Go 1.26's fuzzing coordinator may report a
# spurious "context deadline exceeded" failure when the time runs out while a
# worker is busy (golang/go#75804, fixed in Go 1.27); a count has no deadline.
FUZZTIME  ?= 100000x

# Fuzz targets run briefly by `make test` (package:target).
FUZZ_TARGETS := \
	./config:FuzzParse \
	./config:FuzzParseDuration \
	./config:FuzzParseByteSize \
	./config:FuzzParseRate \
	./router:FuzzParseAuthorization \
	./sources:FuzzValidJSON \
	./sources:FuzzOneLine \
	./sources/http:FuzzParseRequest \
	./sources/webhook:FuzzRequest \
	./sources/webhook:FuzzMatchV1 \
	./sources/webhook:FuzzParseHexSignature \
	./sources/amqp:FuzzDecode \
	./sources/amqp:FuzzBinaryRoundTrip \
	./sources/nats:FuzzDecode \
	./sources/sqs:FuzzToEvent \
	./sources/sqs:FuzzBinaryRoundTrip \
	./sources/s3:FuzzSNS \
	./sources/s3:FuzzTrustAWSURL \
	./internal/s3event:FuzzConvert \
	./internal/cejson:FuzzInteger \
	./internal/cejson:FuzzRoundTrip \
	./internal/cehttp:FuzzParseEvent \
	./internal/cehttp:FuzzBinaryRoundTrip \
	./internal/cebinding:FuzzHeaderValue \
	./internal/cebinding:FuzzSetAttribute \
	./sinks:FuzzRetryAfter \
	./filters:FuzzEnvData \
	./filters:FuzzCompileFilter \
	./journal:FuzzDecodeEvent \
	./journal:FuzzDecodeEnvelope \
	./journal:FuzzSplitBatch \
	./journal:FuzzDecodeTrace \
	./journal:FuzzEncodeTrace \
	./router:FuzzTrace \
	./router:FuzzParseTestRequest \
	./router:FuzzParseReplayRequest \
	./journal:FuzzDecodeClaims

.PHONY: help build test unit fuzz lint bench run clean docker services

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/junction
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/junction

run: ## run junction on its built-in default (CloudEvents on :8080/events, printed on stdout)
	$(GO) run ./cmd/junction serve

test: services lint unit fuzz ## everything CI runs: start test servers, vet, gofmt, all tests with -race, short fuzzing

services: ## install and start the servers the integration tests use (fauxqs, NATS, RabbitMQ)
	bash scripts/services.sh

unit: ## all tests, with the race detector
	$(GO) test -race -count=1 -timeout 20m ./...

fuzz: ## run each fuzz target for FUZZTIME (default 100000 inputs; e.g. FUZZTIME=1m)
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: ## Go benchmarks of the hot paths, then a 10s junction bench
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	$(GO) run ./cmd/junction bench --duration 10s

docker: ## build the container image junction:$(VERSION)
	docker build --build-arg VERSION=$(VERSION) -t junction:$(VERSION) .

clean: ## remove build output and the default journal
	rm -rf bin data
