package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/server"
)

// TestAnswerIsRecordedResult: over HTTP, the decision in a /v1/decide answer
// is byte for byte the result its decision-log record holds (README), for
// an allow, a deny and a full explanation (less its trace, which the log
// does not keep), and the answer starts with
// decision_id, bundle_revision and policy.
func TestAnswerIsRecordedResult(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "decisions.log")
	w, err := decisionlog.Open(ctx, decisionlog.Options{Path: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	url := newTestServer(t, server.New(repoEngine(t), server.Options{Log: w})) + "/v1/decide"
	var answers [][]byte
	for _, q := range []struct{ query, body string }{
		{"", `{"subject":"app:bot","granted_scopes":["project:manage"],"action":"project:launch"}`},
		{"", `{"subject":"app:bot","granted_scopes":"user:read project:write","method":"POST","path":"/projects/42/launch","context":{"client_secret":"s"}}`},
		{"?explain=full", `{"granted_scopes":["user:read"],"requested_scopes":["user:read","user:email"],"action":"user:email"}`},
	} {
		resp, err := http.Post(url+q.query, "application/json", strings.NewReader(q.body))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %v %s", resp.StatusCode, err, body)
		}
		answers = append(answers, body)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	if len(lines) != len(answers) {
		t.Fatalf("%d records for %d answers", len(lines), len(answers))
	}
	for i, line := range lines {
		var rec struct {
			DecisionID string          `json:"decision_id"`
			Result     json.RawMessage `json:"result"` // the bytes as written
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		var head struct {
			DecisionID     string `json:"decision_id"`
			BundleRevision string `json:"bundle_revision"`
			Policy         string `json:"policy"`
		}
		if err := json.Unmarshal(answers[i], &head); err != nil {
			t.Fatal(err)
		}
		prefix, _ := json.Marshal(head) // {"decision_id":..,"bundle_revision":..,"policy":..}
		want := append(append(prefix[:len(prefix)-1:len(prefix)-1], ','), rec.Result[1:]...)
		want = append(want, '\n')
		answer := answers[i]
		if i == 2 { // the trace answers the caller; the record does not keep it
			if bytes.Contains(rec.Result, []byte(`"trace"`)) {
				t.Errorf("the record kept the trace: %s", rec.Result)
			}
			var a map[string]json.RawMessage
			if err := json.Unmarshal(answer, &a); err != nil {
				t.Fatal(err)
			}
			at := bytes.Index(answer, []byte(`,"trace":`))
			answer = append(slices.Clip(answer[:at]), answer[at+len(`,"trace":`)+len(a["trace"]):]...)
		}
		if head.DecisionID != rec.DecisionID || head.BundleRevision == "" || !bytes.Equal(answer, want) {
			t.Errorf("answer %d:\n%s\nrecord's result, wrapped:\n%s", i, answers[i], want)
		}
	}
	if !bytes.Contains(answers[2], []byte(`"trace":[`)) {
		t.Errorf("explain=full answer has no trace: %s", answers[2])
	}
}
