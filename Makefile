.PHONY: test serve ci bench fuzz gen

# The one test command (README): every Go, Rego and end-to-end test.
test:
	go test ./...

serve:
	go run ./cmd/scopegate serve

gen:
	go run ./cmd/scopegate gen

ci:
	bash .ci/run

bench:
	go test -run '^$$' -bench . -benchmem -count 6 ./internal/engine/ ./internal/decisionlog/

FUZZTIME ?= 60s
fuzz:
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/catalog/
	go test -run '^$$' -fuzz '^FuzzParseScopeString$$' -fuzztime $(FUZZTIME) ./internal/request/
	go test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/request/
	go test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZTIME) ./internal/request/
	go test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME) ./internal/scopeset/
	go test -run '^$$' -fuzz '^FuzzVerifyLine$$' -fuzztime $(FUZZTIME) ./internal/decisionlog/
