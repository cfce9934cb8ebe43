.PHONY: test serve ci bench bench-http bench-gateway bench-log soak fuzz gen build install bundle opa

# The one test command (README): every Go, Rego and end-to-end test.
test:
	go test ./...

serve:
	go run ./cmd/scopegate serve

gen:
	go run ./cmd/scopegate gen

# The scopegate binary, in ./bin (the first build compiles OPA: about a minute and a half).
build:
	go build -o bin/scopegate ./cmd/scopegate

# The scopegate binary, in $(go env GOBIN) or ~/go/bin.
install:
	go install ./cmd/scopegate

# Regenerate the catalog data and rebuild the bundle after editing scopes.yaml or policies/.
bundle: gen
	go run ./cmd/scopegate build

ci:
	bash .ci/run

# The real opa CLI at the go.mod version, where go test ./... finds it for the compatibility tests.
opa:
	GOBIN=$(CURDIR)/.ci/bin go install github.com/open-policy-agent/opa@$$(go list -m -f '{{.Version}}' github.com/open-policy-agent/opa)

# In-process benchmarks; bench/run compares the HTTP server with opa run --server.
bench:
	go test -run '^$$' -bench . -benchmem -count 6 ./internal/engine/ ./internal/decisionlog/ ./internal/bundle/
	go test -run '^$$' -bench BenchmarkDecideLog -benchtime 2s ./internal/server/

# scopegate vs opa run --server over HTTP on what a gateway forwards (fresh ids,
# many tokens, ABAC), interleaved rounds, with ratios; bench/run alone repeats 20 questions.
bench-http:
	bench/run -workload realistic -rounds 3

# Forward auth through the real nginx (examples/gateway/nginx.conf) against
# the same questions on /v1/decide; needs nginx (apt-get install nginx-light).
bench-gateway:
	bench/run -workload gateway -rounds 3 -bodies 50000

# Decision throughput with the decision log on against off, one process per run.
bench-log:
	bench/log-ratio
	bench/log-ratio -mode always

soak:
	bench/run -soak -duration 60s -rate 5000

FUZZTIME ?= 60s
fuzz:
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/catalog/
	go test -run '^$$' -fuzz '^FuzzParseScopeString$$' -fuzztime $(FUZZTIME) ./internal/request/
	go test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/request/
	go test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZTIME) ./internal/request/
	go test -run '^$$' -fuzz '^FuzzShapeAgrees$$' -fuzztime $(FUZZTIME) ./internal/request/
	go test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME) ./internal/scopeset/
	go test -run '^$$' -fuzz '^FuzzVerifyLine$$' -fuzztime $(FUZZTIME) ./internal/decisionlog/
	go test -run '^$$' -fuzz '^FuzzAppendString$$' -fuzztime $(FUZZTIME) ./internal/decisionlog/
	go test -run '^$$' -fuzz '^FuzzStreamMatchesDoc$$' -fuzztime $(FUZZTIME) ./internal/decisionlog/
	go test -run '^$$' -fuzz '^FuzzMaskJWTs$$' -fuzztime $(FUZZTIME) ./internal/redact/
	go test -run '^$$' -fuzz '^FuzzRouteTable$$' -fuzztime $(FUZZTIME) ./internal/engine/
	go test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/token/
