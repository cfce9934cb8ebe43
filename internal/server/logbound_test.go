package server

import (
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/engine"
)

// TestBoundedForLog: an ordinary decision is kept whole; an outsized one is
// cut within the budget, each cut saying how much was left out; the trace
// is never kept.
func TestBoundedForLog(t *testing.T) {
	small := engine.Decision{Reason: "missing_scope", Action: "project:launch", Missing: []string{"project:launch"},
		Explain: []string{"action project:launch requires one of [project:launch project:manage]"}, Trace: []string{"Enter"}}
	got := boundedForLog(small)
	if got.Trace != nil || got.Action != small.Action || len(got.Explain) != 1 || got.Explain[0] != small.Explain[0] {
		t.Errorf("small decision changed: %+v", got)
	}

	long := make([]string, 256)
	for i := range long {
		long[i] = strings.Repeat("x", 300)
	}
	big := engine.Decision{Reason: "unknown_scope", Action: strings.Repeat("a", 1000), UnknownScopes: long,
		Explain: []string{strings.Repeat("é", 400)}, GrantedEffective: long, ForeignScopes: long,
		WWWAuthenticate: `Bearer error="invalid_token", error_description="` + strings.Repeat("d", 500) + `"`}
	got = boundedForLog(big)
	size := len(got.Action) + len(got.WWWAuthenticate)
	for _, l := range [][]string{got.UnknownScopes, got.Explain, got.GrantedEffective, got.ForeignScopes} {
		for _, s := range l {
			size += len(s) + 3
		}
	}
	if size > logResultBudget+3*64 {
		t.Errorf("bounded decision holds %d bytes of strings, budget %d", size, logResultBudget)
	}
	if !strings.HasSuffix(got.Action, "...(744 bytes not logged)") {
		t.Errorf("action cut: %q", got.Action[200:])
	}
	if !strings.HasSuffix(got.WWWAuthenticate, "bytes not logged)") || len(got.ForeignScopes) > 1 {
		t.Errorf("www_authenticate or foreign_scopes not bounded: %q, %d scopes", got.WWWAuthenticate, len(got.ForeignScopes))
	}
	if last := got.GrantedEffective[len(got.GrantedEffective)-1]; !strings.HasSuffix(last, "more not logged)") {
		t.Errorf("granted_effective has no marker: %q", last)
	}
	if e := got.Explain[0]; !strings.Contains(e, "bytes not logged") || !strings.HasPrefix(e, "é") || strings.ContainsRune(e, '\uFFFD') {
		t.Errorf("explain cut inside a rune or without a marker: %q", e)
	}
	if len(big.UnknownScopes) != 256 || len(big.UnknownScopes[0]) != 300 {
		t.Error("the answer's decision was modified")
	}
}
