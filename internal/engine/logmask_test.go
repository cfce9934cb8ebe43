package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/engine"
)

const maskPolicy = `package system.log

# The owner of a project is personal data: keep it out of the log.
mask contains "/input/resource/owner" if input.input.resource.type == "project"

# OPA's object form is accepted too; scopegate masks with "***" either way.
mask contains {"op": "upsert", "path": "/input/context/ticket", "value": "x"} if input.input.context.ticket

mask contains "/result/remedy" if not input.result.allow
`

func TestLogMask(t *testing.T) {
	if newEngine(t, repoSource(t)).HasLogMask() {
		t.Fatal("the repository's policy has no system.log.mask")
	}
	src := repoSource(t)
	src.Modules["mask.rego"] = maskPolicy
	e := newEngine(t, src)
	if !e.HasLogMask() {
		t.Fatal("HasLogMask() = false with a system.log.mask rule")
	}
	if st := e.CacheStats(); !st.Enabled {
		t.Errorf("a mask policy reading the record turned the decision cache off: %s", st.Disabled)
	}
	for _, tc := range []struct {
		name   string
		record map[string]any
		want   []string
	}{
		{"nothing to mask", map[string]any{"input": map[string]any{"action": "user:read"}, "result": map[string]any{"allow": true}}, []string{}},
		{"every rule", map[string]any{
			"input":  map[string]any{"resource": map[string]any{"type": "project", "owner": "u1"}, "context": map[string]any{"ticket": "T-1"}},
			"result": map[string]any{"allow": false, "remedy": "ask u1"},
		}, []string{"/input/context/ticket", "/input/resource/owner", "/result/remedy"}},
	} {
		got, err := e.LogMask(context.Background(), tc.record)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%s: LogMask = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestLogMaskRejectsNonPointers(t *testing.T) {
	src := repoSource(t)
	src.Modules["mask.rego"] = "package system.log\n\nmask contains 42\n"
	e := newEngine(t, src)
	if _, err := e.LogMask(context.Background(), map[string]any{}); err == nil || !strings.Contains(err.Error(), "not a JSON pointer") {
		t.Errorf("LogMask error = %v, want: not a JSON pointer", err)
	}
	if got, err := (*engine.Engine)(nil).LogMask(context.Background(), nil); got != nil || err != nil {
		t.Errorf("nil engine: %v %v", got, err)
	}
}

// TestLogMaskReadByDecision: when a decision rule reads data.system.log, the
// cache analysis sees the mask rules too (here they read the whole input,
// so the cache is off).
func TestLogMaskReadByDecision(t *testing.T) {
	src := repoSource(t)
	src.Modules["mask.rego"] = "package system.log\n\nmask contains p if some p in input\n"
	src.Modules["uses.rego"] = "package scopegate.extra\n\nmasked := data.system.log.mask\n"
	if st := newEngine(t, src).CacheStats(); st.Enabled {
		t.Error("decision cache on, though a decision module reads data.system.log")
	}
	delete(src.Modules, "uses.rego")
	if st := newEngine(t, src).CacheStats(); !st.Enabled {
		t.Errorf("decision cache off with only a mask module: %s", st.Disabled)
	}
}
