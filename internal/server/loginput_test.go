package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
)

// TestLogInputMatchesMap: the input a record holds is engine.Input.Map,
// whether the server hands the log that map or logInput, which writes the
// same members without building it.
func TestLogInputMatchesMap(t *testing.T) {
	inputs := []engine.Input{
		{},
		{GrantedScopes: []string{}},
		{Subject: "app:x", ClientID: "c", GrantedScopes: []string{"user:read"}, Action: "user:read"},
		{Subject: "u", GrantedScopes: []string{"project:write"}, RequestedScopes: []string{}, Method: "POST", Path: "/projects/1/launch",
			Resource: map[string]any{"type": "project", "owner": "Bearer abc"},
			Context:  map[string]any{"ip": "10.0.0.1", "client_secret": "s", "nested": []any{map[string]any{"token": json.Number("1")}}}},
		{GrantedScopes: []string{"eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."}, RequestedScopes: []string{"a", "b"}, Context: map[string]any{}},
	}
	masker, err := decisionlog.NewMasker("/input/resource/owner")
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	var events []decisionlog.Event
	for i := range inputs {
		for _, input := range []any{inputs[i].Map(), &logInput{Input: inputs[i]}} {
			events = append(events, decisionlog.Event{DecisionID: "d", Timestamp: ts, Input: input})
		}
	}
	lines := logRecords(t, masker, events...)
	if len(lines) != 2*len(inputs) {
		t.Fatalf("%d records, want %d", len(lines), 2*len(inputs))
	}
	if got, want := lines[7].Masked, []string{"/input/context/client_secret", "/input/context/nested/0/token", "/input/resource/owner"}; !slices.Equal(got, want) {
		t.Errorf("masked %q, want %q", got, want)
	}
	for i := 0; i < len(lines); i += 2 {
		fromMap, _ := json.Marshal(lines[i].Input)
		fromMembers, _ := json.Marshal(lines[i+1].Input)
		if string(fromMap) != string(fromMembers) || !slices.Equal(lines[i].Masked, lines[i+1].Masked) {
			t.Errorf("input %d:\n Map:        %s %q\n LogMembers: %s %q", i/2, fromMap, lines[i].Masked, fromMembers, lines[i+1].Masked)
		}
	}
}

// TestLogResultMatchesJSON: logResult writes what json.Marshal writes for
// engine.Decision.
func TestLogResultMatchesJSON(t *testing.T) {
	for _, d := range testDecisions(t) {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeRecordResult(t, (*logResult)(&d))
		if !jsonEqual(t, got, want) {
			t.Errorf("logResult %s\njson.Marshal %s", got, want)
		}
	}
}

// TestWriteDecisionMatchesJSON: the /v1/decide answer writeDecision writes
// from the encoded decision is the one encoding/json gives for response,
// and its decision members are the bytes the record holds.
func TestWriteDecisionMatchesJSON(t *testing.T) {
	for _, d := range testDecisions(t) {
		resp := response{DecisionID: "id\"1", Decision: d, BundleRevision: "rev\u2028\xff", Policy: engine.Policy}
		want := httptest.NewRecorder()
		writeJSON(want, http.StatusOK, resp)
		a := newAnswer()
		a.encode(d)
		if a.err != nil {
			t.Fatal(a.err)
		}
		if rec := decodeRecordResult(t, &a.enc); !jsonEqual(t, rec, a.enc.Bytes()) {
			t.Errorf("record result %s, answer's decision %s", rec, a.enc.Bytes())
		}
		for _, failed := range []bool{false, true} {
			if failed {
				a.err = errors.New("encoding failed") // writeDecision falls back to encoding/json
			}
			got := httptest.NewRecorder()
			writeDecision(got, &resp, a)
			if got.Code != want.Code || !maps.EqualFunc(got.Header(), want.Header(), slices.Equal) || !jsonEqual(t, got.Body.Bytes(), want.Body.Bytes()) ||
				!bytes.HasSuffix(got.Body.Bytes(), []byte("\n")) {
				t.Errorf("writeDecision (encoding failed: %v): %d %v %s\nwriteJSON: %d %v %s", failed, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
			}
		}
	}
}

// testDecisions are a decision with every field zero, one with empty lists
// and one with every field set (so that a field added to engine.Decision
// and not to logResult fails the tests using them).
func testDecisions(t *testing.T) []engine.Decision {
	t.Helper()
	full := engine.Decision{}
	rv := reflect.ValueOf(&full).Elem()
	for i := range rv.NumField() {
		switch f := rv.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("v\"" + rv.Type().Field(i).Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"a", rv.Type().Field(i).Name}))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", rv.Type().Field(i).Name, f.Kind())
		}
	}
	return []engine.Decision{{}, {Explain: []string{}, Trace: []string{}}, full}
}

// decodeRecordResult logs an event with result v and returns the result as
// the record holds it.
func decodeRecordResult(t *testing.T, v any) []byte {
	t.Helper()
	rec := logRecords(t, nil, decisionlog.Event{DecisionID: "d", Result: v})[0]
	b, err := json.Marshal(rec.Result)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logRecords writes events to a fresh decision log and reads them back.
func logRecords(t *testing.T, masker *decisionlog.Masker, events ...decisionlog.Event) []decisionlog.Event {
	t.Helper()
	path := filepath.Join(t.TempDir(), "decisions.log")
	w, err := decisionlog.Open(context.Background(), decisionlog.Options{Path: path, Masker: masker, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := w.LogDurable(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, err := decisionlog.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decisionlog.QueryAll(files, decisionlog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}
