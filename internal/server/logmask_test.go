package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/server"
	"github.com/scopegate/scopegate/internal/source"
)

// TestPolicyLogMask: a policy's data.system.log.mask masks what it names in
// the record; when it fails, the answer is a policy_error deny and the record
// masks the whole input.
func TestPolicyLogMask(t *testing.T) {
	ctx := context.Background()
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	src.Modules["mask.rego"] = `package system.log

mask contains "/input/resource/owner" if input.input.resource.type == "project"

mask contains 42 if input.input.context.broken
`
	eng, err := engine.New(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "decisions.log")
	w, err := decisionlog.Open(ctx, decisionlog.Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := server.New(eng, server.Options{Log: w, AllowedHosts: []string{"example.com"}}) // httptest.NewRequest's Host
	decide := func(body string) map[string]any {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/decide", strings.NewReader(body)))
		var d map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		return d
	}
	if d := decide(`{"granted_scopes":["project:read"],"action":"project:read","resource":{"type":"project","id":"7","owner":"alice"}}`); d["allow"] != true {
		t.Errorf("masked decision: %v", d)
	}
	if d := decide(`{"granted_scopes":["project:read"],"action":"project:read","context":{"broken":true,"note":"keep me out"}}`); d["allow"] != false || d["reason"] != engine.ReasonPolicyError {
		t.Errorf("a failing mask policy answered %v, want a policy_error deny", d)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d records, want 2:\n%s", len(lines), data)
	}
	if strings.Contains(lines[0], "alice") || !strings.Contains(lines[0], `"owner":"***"`) || !strings.Contains(lines[0], `"masked":["/input/resource/owner"]`) {
		t.Errorf("record 1: %s", lines[0])
	}
	if strings.Contains(lines[1], "keep me out") || !strings.Contains(lines[1], `"input":"***"`) || !strings.Contains(lines[1], `"reason":"policy_error"`) {
		t.Errorf("record 2: %s", lines[1])
	}
}
