package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/server"
)

type batchJSON struct {
	Results []decideResponse `json:"results"`
	Error   *struct {
		Code, Message, Field string
	} `json:"error"`
	DecisionID string `json:"decision_id"`
}

func TestDecideBatch(t *testing.T) {
	log := &recordingLog{}
	eng := repoEngine(t)
	url := start(t, eng, log) + "/v1/decide/batch"
	var b batchJSON
	status := fetch(t, "POST", url, `{"subject":"app:bot","client_id":"c1",
		"scope":"project:write user:read","requested_scopes":"project:manage user:read user:email",
		"checks":[{"action":"project:read"},{"action":"project:launch"},{"method":"GET","path":"/me/email"},
		          {"action":"project:explode"},{"method":"DELETE","path":"/projects/4"},{"action":"glossary:read"}]}`, &b)
	if status != 200 {
		t.Fatalf("status %d: %+v", status, b.Error)
	}
	want := []struct {
		allow    bool
		reason   string
		narrowed bool
	}{
		{true, "allowed", false},
		{false, "missing_scope", true},   // project:manage was requested, not granted
		{false, "missing_scope", true},   // user:email was requested, not granted
		{false, "unknown_action", false}, // not a narrowing
		{false, "missing_scope", true},   // project:manage deletes
		{false, "missing_scope", false},  // never requested
	}
	if len(b.Results) != len(want) {
		t.Fatalf("%d results", len(b.Results))
	}
	ids := map[string]bool{}
	for i, w := range want {
		d := b.Results[i]
		if d.Allow != w.allow || d.Reason != w.reason || d.NarrowedByUser != w.narrowed {
			t.Errorf("check %d: allow=%v reason=%s narrowed=%v, want %+v (explain %q)", i, d.Allow, d.Reason, d.NarrowedByUser, w, d.Explain)
		}
		if d.DecisionID == "" || ids[d.DecisionID] || d.BundleRevision != eng.Revision() || d.Policy != "data.scopegate.authz" {
			t.Errorf("check %d: id %q revision %q policy %q", i, d.DecisionID, d.BundleRevision, d.Policy)
		}
		ids[d.DecisionID] = true
		if fmt.Sprint(d.RequestedNotGranted) != "[project:manage user:email]" {
			t.Errorf("check %d: requested_not_granted %v", i, d.RequestedNotGranted)
		}
	}
	// Each check is its own decision-log record, in order.
	events := log.all()
	if len(events) != len(want) {
		t.Fatalf("logged %d records, want %d", len(events), len(want))
	}
	for i, ev := range events {
		if ev.DecisionID != b.Results[i].DecisionID || ev.Allow != want[i].allow || ev.Reason != want[i].reason ||
			ev.Subject != "app:bot" || ev.ClientID != "c1" || ev.Bundles["scopegate"].Revision != eng.Revision() {
			t.Errorf("record %d = %+v", i, ev)
		}
	}
}

func TestDecideBatchBadInput(t *testing.T) {
	log := &recordingLog{}
	url := start(t, repoEngine(t), log) + "/v1/decide/batch"
	for _, tc := range []struct {
		name, query, body, field string
		status                   int
	}{
		{"malformed", "", `{"checks":[`, "", 400},
		{"no checks", "", `{"scope":"user:read"}`, "checks", 400},
		{"too many", "", `{"checks":[` + strings.TrimSuffix(strings.Repeat(`{"action":"public"},`, 101), ",") + `]}`, "checks", 400},
		{"bad check", "", `{"checks":[{"action":"public"},{"method":"GET","path":"nope"}]}`, "checks[1].path", 400},
		{"unknown check field", "", `{"checks":[{"action":"public","scopes":"x"}]}`, "checks[0].scopes", 400},
		{"shared field", "", `{"granted_scopes":"a  b","checks":[{"action":"public"}]}`, "granted_scopes", 400},
		{"explain full", "?explain=full", `{"checks":[{"action":"public"}]}`, "explain", 400},
		{"too large", "", `{"context":{"k":"` + strings.Repeat("x", 300<<10) + `"},"checks":[{"action":"public"}]}`, "", 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b batchJSON
			status := fetch(t, "POST", url+tc.query, tc.body, &b)
			if status != tc.status || b.Error == nil || b.Error.Field != tc.field || b.DecisionID == "" || len(b.Results) != 0 {
				t.Fatalf("status %d, %+v", status, b)
			}
		})
	}
	// A rejected batch is one invalid_input record, as for /v1/decide.
	events := log.all()
	if len(events) != 8 {
		t.Fatalf("logged %d records, want 8", len(events))
	}
	for _, ev := range events {
		if ev.Allow || ev.Reason != "invalid_input" {
			t.Errorf("record %+v", ev)
		}
	}
}

// TestDecideBatchFailsClosedPerCheck: without a policy every check is a
// policy_error deny; when the log fails every check is log_unavailable.
func TestDecideBatchFailsClosedPerCheck(t *testing.T) {
	body := `{"granted_scopes":["project:manage"],"checks":[{"action":"project:read"},{"action":"project:launch"}]}`
	for _, tc := range []struct {
		name   string
		url    string
		reason string
	}{
		{"no policy", start(t, nil, &recordingLog{}), "policy_error"},
		{"log down", start(t, repoEngine(t), &recordingLog{err: errors.New("disk full")}), "log_unavailable"},
	} {
		var b batchJSON
		status := fetch(t, "POST", tc.url+"/v1/decide/batch", body, &b)
		if status != 200 || len(b.Results) != 2 {
			t.Fatalf("%s: status %d, %+v", tc.name, status, b)
		}
		for i, d := range b.Results {
			if d.Allow || d.Reason != tc.reason || d.DecisionID == "" {
				t.Errorf("%s: check %d = %+v", tc.name, i, d)
			}
		}
	}
}

// queueingLog records how each record arrived: queued (Log) or waited on
// (LogDurable); failDurable makes every wait fail.
type queueingLog struct {
	recordingLog
	queued, waited int
	failDurable    bool
	// loseQueued drops the queued record of that number (1-based) as a log
	// does that fails and recovers before the batch's final wait.
	loseQueued int
	failures   uint64
}

func (l *queueingLog) Log(ctx context.Context, ev decisionlog.Event) error {
	l.mu.Lock()
	l.queued++
	lose := l.queued == l.loseQueued
	if lose {
		l.failures++
	}
	l.mu.Unlock()
	if lose {
		return nil // accepted, then lost
	}
	return l.recordingLog.LogDurable(ctx, ev)
}

func (l *queueingLog) Failures() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures
}

func (l *queueingLog) LogDurable(ctx context.Context, ev decisionlog.Event) error {
	l.mu.Lock()
	l.waited++
	fail := l.failDurable
	l.mu.Unlock()
	if fail {
		return errors.New("fsync failed")
	}
	return l.recordingLog.LogDurable(ctx, ev)
}

const threeChecks = `{"granted_scopes":["project:manage"],"checks":[{"action":"project:read"},{"action":"project:launch"},{"action":"user:read"}]}`

// batchThreeChecks asks threeChecks of a server logging to log.
func batchThreeChecks(t *testing.T, log server.DecisionLog) (int, []decideResponse) {
	t.Helper()
	resp, err := http.Post(start(t, repoEngine(t), log)+"/v1/decide/batch", "application/json", strings.NewReader(threeChecks))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Results []decideResponse }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out.Results
}

// TestBatchWaitsOnce: a batch queues every record but the last and waits
// for that one only, so a batch of N costs one fsync wait, not N.
func TestBatchWaitsOnce(t *testing.T) {
	log := &queueingLog{}
	_, results := batchThreeChecks(t, log)
	if log.queued != 2 || log.waited != 1 || len(log.all()) != 3 {
		t.Fatalf("queued %d waited %d records %d", log.queued, log.waited, len(log.all()))
	}
	if len(results) != 3 || !results[0].Allow || !results[1].Allow || results[2].Allow {
		t.Fatalf("results %+v", results)
	}
}

// TestBatchLastWaitFailsAll: when the final wait fails, none of the queued
// records is known to be durable, so every check is denied log_unavailable.
func TestBatchLastWaitFailsAll(t *testing.T) {
	log := &queueingLog{failDurable: true}
	status, results := batchThreeChecks(t, log)
	if status != 200 || len(results) != 3 {
		t.Fatalf("status %d, %d results", status, len(results))
	}
	for i, d := range results {
		if d.Allow || d.Reason != "log_unavailable" {
			t.Errorf("check %d: %+v", i, d)
		}
	}
}

// TestBatchLostRecordFailsAll: a queued record lost while the log failed
// and recovered before the final wait (which succeeds) must not leave an
// allow without a record: the batch cannot tell whose record was lost, so
// no check is answered as allowed.
func TestBatchLostRecordFailsAll(t *testing.T) {
	log := &queueingLog{loseQueued: 1}
	status, results := batchThreeChecks(t, log)
	if status != 200 || len(results) != 3 || len(log.all()) != 2 {
		t.Fatalf("status %d, %d results, %d records", status, len(results), len(log.all()))
	}
	for i, d := range results {
		if d.Allow || d.Reason != "log_unavailable" {
			t.Errorf("check %d answered without a durable record: %+v", i, d)
		}
	}
}

// TestBatchChecksTimedFromTheirOwnStart: scopegate_decision_duration_seconds
// times each check of a batch from its own start, not from the batch's, so
// a batch of 50 checks does not report 50 long decisions. The clock moves
// 1ms each time it is read.
func TestBatchChecksTimedFromTheirOwnStart(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(0, 0)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
	reg := prometheus.NewRegistry()
	url := newTestServer(t, server.New(repoEngine(t), server.Options{Now: clock, Registerer: reg, Gatherer: reg}))
	checks := strings.TrimSuffix(strings.Repeat(`{"action":"user:read"},`, 50), ",")
	resp, err := http.Post(url+"/v1/decide/batch", "application/json", strings.NewReader(`{"scope":"user:read","checks":[`+checks+`]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "scopegate_decision_duration_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 50 {
			t.Fatalf("%d observations, want 50", h.GetSampleCount())
		}
		// Each check reads the clock a few times: a few ms each, 0.25s in
		// all at most. Timed from the batch start, they add up to seconds.
		if sum := h.GetSampleSum(); sum > 0.25 {
			t.Errorf("checks' durations add up to %.3fs: timed from the batch start?", sum)
		}
		return
	}
	t.Fatal("no scopegate_decision_duration_seconds")
}
