GO ?= go
PKGS_UNIT := $(shell $(GO) list ./... | grep -v /e2e)

.PHONY: build test unit e2e vet demo demo-citus bench clean

build:
	$(GO) build -o bin/pgwarden ./cmd/pgwarden
	$(GO) build -o bin/pgwarden-demo ./cmd/pgwarden-demo
	$(GO) build -o bin/pgwardenctl ./cmd/pgwardenctl

vet:
	$(GO) vet ./...

# The whole suite: vet, unit and integration tests, then the e2e tests
# (real etcd, PostgreSQL and daemons), run on their own so their timing
# is not disturbed by the other packages.
test: vet unit e2e

unit:
	$(GO) test -count=1 -timeout 15m $(PKGS_UNIT)

e2e:
	$(GO) test -count=1 -timeout 25m -v ./e2e/

demo: build
	./bin/pgwarden-demo --binary bin/pgwarden

# A Citus cluster: a coordinator group and two worker groups of two
# members each. It needs the Citus extension installed for PostgreSQL 15.
demo-citus: build
	./bin/pgwarden-demo --binary bin/pgwarden --citus

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./restapi/ ./ha/

clean:
	rm -rf bin
