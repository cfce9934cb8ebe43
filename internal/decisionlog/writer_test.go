package decisionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestChainAcrossRotationAndRestart(t *testing.T) {
	tests := []struct {
		name      string
		maxBytes  int64
		sessions  []int // records logged per Open..Close
		wantFiles func(n int) bool
	}{
		{"single session, no rotation", 0, []int{10}, func(n int) bool { return n == 1 }},
		{"restarts, no rotation", 0, []int{3, 4, 5}, func(n int) bool { return n == 1 }},
		{"rotation", 1500, []int{20}, func(n int) bool { return n >= 5 }},
		{"rotation and restarts", 1500, []int{7, 1, 12}, func(n int) bool { return n >= 5 }},
		{"restart with nothing logged", 1500, []int{5, 0, 5}, func(n int) bool { return n >= 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := logPath(t)
			total := 0
			var lastHash string
			for s, n := range tt.sessions {
				w := openT(t, Options{Path: path, MaxBytes: tt.maxBytes})
				logRange(t, w, total, total+n)
				total += n
				closeT(t, w)

				rep := mustVerify(t, path)
				if rep.Records != total {
					t.Fatalf("session %d: verified %d records, want %d", s, rep.Records, total)
				}
				if !rep.StartsAtGenesis() {
					t.Errorf("session %d: chain starts at %s, want genesis", s, rep.FirstPrevHash)
				}
				if n == 0 && rep.LastHash != lastHash {
					t.Errorf("session %d: empty session changed the last hash", s)
				}
				lastHash = rep.LastHash
			}
			files := mustFiles(t, path)
			if !tt.wantFiles(len(files)) {
				t.Errorf("got %d files: %v", len(files), files)
			}
			if got := countLines(t, files); got != total {
				t.Errorf("%d lines on disk, want %d", got, total)
			}
			if got, want := decisionIDs(t, path), wantIDs(0, total); !slices.Equal(got, want) {
				t.Errorf("records out of order:\n got %v\nwant %v", got, want)
			}
			for _, f := range files {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if tt.maxBytes > 0 && st.Size() > tt.maxBytes {
					t.Errorf("%s is %d bytes, over MaxBytes %d", f, st.Size(), tt.maxBytes)
				}
			}
		})
	}
}

func TestRecordFormat(t *testing.T) {
	path := logPath(t)
	w := openT(t, Options{Path: path})
	ev := testEvent(3)
	ev.Timestamp = time.Date(2026, 11, 23, 19, 5, 1, 123456789, time.FixedZone("CET", 3600))
	ev.Input.(map[string]any)["big"] = json.Number("12345678901234567890123")
	ev.Input.(map[string]any)["ratio"] = 1.50
	ev.Input.(map[string]any)["html"] = "<a&b>"
	if err := w.LogDurable(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	noReason := testEvent(4)
	noReason.Reason, noReason.Allow, noReason.Timestamp = "", false, time.Time{}
	if err := w.LogDurable(context.Background(), noReason); err != nil {
		t.Fatal(err)
	}
	closeT(t, w)

	ls := lines(t, path)
	if len(ls) != 2 {
		t.Fatalf("got %d lines", len(ls))
	}
	line := string(ls[0])
	for _, want := range []string{
		`"decision_id":"d-00003"`,
		`"timestamp":"2026-11-23T18:05:01.123456789Z"`, // UTC
		`"path":"scopegate/authz/decision"`,
		`"bundles":{"scopegate":{"revision":"rev-1"}}`,
		`"metrics":{"timer_server_handler_ns":1237}`,
		`"labels":{"id":"node-1"}`,
		`"requested_by":"127.0.0.1:5555"`,
		`"reason":"allowed"`,
		`"allow":true`,
		`"client_id":"c1"`,
		`"subject":"app:translator-bot"`,
		`"prev_hash":"` + GenesisHash + `"`,
		`"big":12345678901234567890123`, // numbers kept verbatim
		`"ratio":1.5`,
		`"html":"<a&b>"`, // no HTML escaping in the canonical form
	} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %s:\n%s", want, line)
		}
	}
	if !strings.HasPrefix(line, `{"allow":true,"bundles":`) {
		t.Errorf("members are not in canonical order:\n%s", line)
	}
	rec, err := verifyLine(bytes.TrimSuffix(ls[0], []byte{'\n'}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(line, `,"hash":"`+rec.hash+`"}`+"\n") {
		t.Errorf("hash is not the last member:\n%s", line)
	}
	// Fields that must always be present, even when empty.
	second := string(ls[1])
	for _, want := range []string{`"allow":false`, `"reason":""`, `"prev_hash":"` + rec.hash + `"`, `"hash":"`} {
		if !strings.Contains(second, want) {
			t.Errorf("second line lacks %s:\n%s", want, second)
		}
	}
	got, err := DecodeEvent(bytes.TrimSpace(ls[0]))
	if err != nil {
		t.Fatal(err)
	}
	if got.DecisionID != "d-00003" || !got.Timestamp.Equal(ev.Timestamp) || got.Hash != rec.hash ||
		got.PrevHash != GenesisHash || got.Bundles["scopegate"].Revision != "rev-1" || got.Subject != ev.Subject {
		t.Errorf("DecodeEvent = %+v", got)
	}
}

func TestOpenTruncatedTail(t *testing.T) {
	tests := []struct {
		name string
		// damage the log after 5 records were logged across two files
		damage   func(t *testing.T, active string)
		wantLine string // in the error without repair
	}{
		{"partial record after complete ones", func(t *testing.T, active string) {
			appendFile(t, active, `{"allow":true,"bundles":{"scopegate":{"rev`)
		}, "decisions.log:3:"},
		{"active file holds only a partial record", func(t *testing.T, active string) {
			if err := os.WriteFile(active, []byte(`{"allow":tr`), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "decisions.log:1:"},
		{"complete record missing its newline", func(t *testing.T, active string) {
			b, err := os.ReadFile(active)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(active, bytes.TrimSuffix(b, []byte{'\n'}), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "decisions.log:2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := logPath(t)
			clock := newFakeClock(t0)
			w := openT(t, Options{Path: path, MaxAge: time.Hour, Clock: clock.Now})
			logRange(t, w, 0, 3)
			clock.Add(time.Hour) // the next record rotates
			logRange(t, w, 3, 5)
			closeT(t, w)
			if n := len(mustFiles(t, path)); n != 2 {
				t.Fatalf("setup: %d files, want 2", n)
			}
			tt.damage(t, path)

			_, err := Open(context.Background(), Options{Path: path})
			if err == nil || !strings.Contains(err.Error(), tt.wantLine) || !strings.Contains(err.Error(), "truncated") {
				t.Fatalf("Open without repair: err = %v, want truncated record at %s", err, tt.wantLine)
			}

			var logs syncBuffer
			w = openT(t, Options{Path: path, RepairTruncatedTail: true, Logger: testLogger(&logs)})
			if !strings.Contains(logs.String(), "truncated record") || !strings.Contains(logs.String(), "line=") {
				t.Errorf("repair was not logged: %q", logs.String())
			}
			logRange(t, w, 100, 102)
			closeT(t, w)
			rep := mustVerify(t, path)
			if !rep.StartsAtGenesis() || rep.Records < 3+2 {
				t.Errorf("after repair: %+v", rep)
			}
		})
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesDamagedLastRecord(t *testing.T) {
	path := logPath(t)
	w := openT(t, Options{Path: path})
	logRange(t, w, 0, 4)
	closeT(t, w)
	ls := lines(t, path)
	edited := bytes.Replace(ls[3], []byte(`"d-00003"`), []byte(`"d-00009"`), 1)
	if bytes.Equal(edited, ls[3]) {
		t.Fatal("setup: nothing edited")
	}
	if err := os.WriteFile(path, append(bytes.Join(ls[:3], nil), edited...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, repair := range []bool{false, true} {
		_, err := Open(context.Background(), Options{Path: path, RepairTruncatedTail: repair})
		if err == nil || !strings.Contains(err.Error(), "decisions.log:4:") || !strings.Contains(err.Error(), string(KindHashMismatch)) {
			t.Errorf("repair=%v: err = %v, want hash mismatch at decisions.log:4", repair, err)
		}
	}
}

func TestMaskingNeverWritesSecrets(t *testing.T) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlLXNlY3JldA"
	mkInput := func() map[string]any {
		return map[string]any{
			"subject":        "app:translator-bot",
			"granted_scopes": []any{"user:read"},
			"resource":       map[string]any{"type": "project", "id": "42", "owner": "owner-alice-7"},
			"headers": map[string]any{
				"Authorization": "Basic c2VjcmV0LWJhc2ljLTU=",
				"cookie":        []any{"sid=cookie-6"},
				"Accept":        "application/json",
			},
			"context": map[string]any{
				"client_secret": "s3cr3t-1",
				"card":          "4111-card-8",
				"ip":            "10.0.0.1",
				"nested": map[string]any{
					"Password": "pw-2",
					"list":     []any{map[string]any{"API_KEY": "k-3"}, "plain"},
					"Credentials": map[string]any{
						"user": "cred-user-9",
					},
				},
				"note": "bearer abc.def-4",
			},
			"seen":    []any{"Bearer zz-10", jwt},
			"refresh": map[string]any{"access_token": "tok-11"}, // secret keys are masked at any depth
		}
	}
	m, err := NewMasker("/input/resource/owner", "/input/context/card", "/input/missing/thing", "/result/x")
	if err != nil {
		t.Fatal(err)
	}
	path := logPath(t)
	w := openT(t, Options{Path: path, Masker: m})
	input := mkInput()
	ev := testEvent(0)
	ev.Input = input
	ev.Masked = []string{"/input/engine_masked"}
	if err := w.LogDurable(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	closeT(t, w)

	if !deepEqualJSON(input, mkInput()) {
		t.Errorf("the caller's input was modified: %v", input)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cr3t-1", "pw-2", "k-3", "abc.def-4", "c2VjcmV0LWJhc2ljLTU", "cookie-6",
		"owner-alice-7", "4111-card-8", "cred-user-9", "zz-10", "eyJzdWIiOiJ1MSJ9", "tok-11"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("file contains %q:\n%s", secret, raw)
		}
	}
	for _, kept := range []string{"10.0.0.1", "plain", "application/json", `"id":"42"`} {
		if !bytes.Contains(raw, []byte(kept)) {
			t.Errorf("file lost non-secret %q", kept)
		}
	}
	got, err := DecodeEvent(bytes.TrimSpace(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/input/context/card",
		"/input/context/client_secret",
		"/input/context/nested/Credentials",
		"/input/context/nested/Password",
		"/input/context/nested/list/0/API_KEY",
		"/input/context/note",
		"/input/engine_masked",
		"/input/headers/Authorization",
		"/input/headers/cookie",
		"/input/refresh/access_token",
		"/input/resource/owner",
		"/input/seen/0",
		"/input/seen/1",
	}
	if !slices.Equal(got.Masked, want) {
		t.Errorf("masked =\n%q\nwant\n%q", got.Masked, want)
	}
	if c := got.Input.(map[string]any)["context"].(map[string]any); c["client_secret"] != MaskValue || c["card"] != MaskValue {
		t.Errorf("masked values are not %q: %v", MaskValue, c)
	}
	mustVerify(t, path)
}

func deepEqualJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// blockFirstBatch makes the writer goroutine stop in its first batch until
// release is closed; entered is signalled once it is stuck.
func blockFirstBatch() (hook func(), entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}, entered, release
}

func TestFailClosedWhenQueueFull(t *testing.T) {
	path := logPath(t)
	hook, entered, release := blockFirstBatch()
	w := openT(t, Options{Path: path, BufferSize: 2, OnFull: FailClosed, beforeBatch: hook})
	ctx := context.Background()
	if err := w.Log(ctx, testEvent(0)); err != nil { // taken by the (now stuck) writer
		t.Fatal(err)
	}
	<-entered
	for i := 1; i <= 2; i++ { // fill the queue
		if err := w.Log(ctx, testEvent(i)); err != nil {
			t.Fatalf("Log(%d): %v", i, err)
		}
	}
	for _, log := range []func(context.Context, Event) error{w.Log, w.LogDurable} {
		start := time.Now()
		err := log(ctx, testEvent(3))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("full queue: err = %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("FailClosed waited %v", d)
		}
	}
	if s := w.Stats(); s.Rejected != 2 || s.QueueLen != 2 || s.QueueCap != 2 {
		t.Errorf("stats = %+v", s)
	}
	close(release)
	closeT(t, w)
	if rep := mustVerify(t, path); rep.Records != 3 {
		t.Errorf("%d records on disk, want the 3 accepted", rep.Records)
	}
}

func TestBlockAppliesBackPressure(t *testing.T) {
	path := logPath(t)
	hook, entered, release := blockFirstBatch()
	w := openT(t, Options{Path: path, BufferSize: 1, beforeBatch: hook})
	ctx := context.Background()
	if err := w.Log(ctx, testEvent(0)); err != nil {
		t.Fatal(err)
	}
	<-entered
	if err := w.Log(ctx, testEvent(1)); err != nil { // fills the queue
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.Log(short, testEvent(99)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Log with full queue: err = %v, want the context's deadline", err)
	}
	blocked := make(chan error, 1)
	go func() { blocked <- w.LogDurable(ctx, testEvent(2)) }()
	select {
	case err := <-blocked:
		t.Fatalf("LogDurable returned %v while the queue was full", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatalf("blocked LogDurable: %v", err)
	}
	closeT(t, w)
	if got, want := decisionIDs(t, path), wantIDs(0, 3); !slices.Equal(got, want) {
		t.Errorf("records = %v, want %v", got, want)
	}
}

func TestCloseUnblocksSenders(t *testing.T) {
	path := logPath(t)
	hook, entered, release := blockFirstBatch()
	w := openT(t, Options{Path: path, BufferSize: 1, beforeBatch: hook})
	ctx := context.Background()
	_ = w.Log(ctx, testEvent(0))
	<-entered
	_ = w.Log(ctx, testEvent(1))
	blocked := make(chan error, 1)
	go func() { blocked <- w.Log(ctx, testEvent(2)) }()
	time.Sleep(20 * time.Millisecond)

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := w.Close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close while the writer is stuck: %v, want deadline", err)
	}
	if err := <-blocked; !errors.Is(err, ErrClosed) {
		t.Errorf("blocked Log after Close: %v, want ErrClosed", err)
	}
	close(release)
	closeT(t, w) // idempotent: waits for the drain
	closeT(t, w)
	if got, want := decisionIDs(t, path), wantIDs(0, 2); !slices.Equal(got, want) {
		t.Errorf("records = %v, want %v (accepted before Close, none after)", got, want)
	}
	for _, log := range []func(context.Context, Event) error{w.Log, w.LogDurable} {
		if err := log(ctx, testEvent(5)); !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
	if err := w.Healthy(); !errors.Is(err, ErrClosed) {
		t.Errorf("Healthy after Close = %v", err)
	}
}

func TestConcurrentLogDurableLosesNothing(t *testing.T) {
	for _, tt := range []struct {
		name     string
		maxBytes int64
		buffer   int
	}{
		{"one file", 0, 0},
		{"rotating, tiny queue", 4000, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 400
			path := logPath(t)
			w := openT(t, Options{Path: path, MaxBytes: tt.maxBytes, BufferSize: tt.buffer})
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					if err := w.LogDurable(context.Background(), testEvent(i)); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			s := w.Stats()
			closeT(t, w)
			if s.Written != n || s.Failed != 0 || s.Rejected != 0 {
				t.Errorf("stats = %+v", s)
			}
			if s.Syncs >= n {
				t.Logf("no group commit happened: %d fsyncs for %d records", s.Syncs, n)
			}
			files := mustFiles(t, path)
			if got := countLines(t, files); got != n {
				t.Errorf("%d lines, want %d", got, n)
			}
			if rep := mustVerify(t, path); rep.Records != n {
				t.Errorf("verified %d", rep.Records)
			}
			ids := decisionIDs(t, path)
			slices.Sort(ids)
			if !slices.Equal(ids, wantIDs(0, n)) {
				t.Error("some decision ids are missing or duplicated")
			}
			if tt.maxBytes > 0 && s.Rotations == 0 {
				t.Error("expected rotations")
			}
		})
	}
}

// faults injects write and fsync errors into every file the writer opens;
// with partial, a failing write first writes half of its bytes (a disk
// filling up mid-record).
type faults struct{ write, sync, partial atomic.Bool }

type faultyFile struct {
	*os.File
	f *faults
}

func (ff faultyFile) Write(p []byte) (int, error) {
	if ff.f.write.Load() {
		if ff.f.partial.Load() {
			n, _ := ff.File.Write(p[:len(p)/2])
			return n, syscall.ENOSPC
		}
		return 0, syscall.ENOSPC
	}
	return ff.File.Write(p)
}

func (ff faultyFile) Sync() error {
	if ff.f.sync.Load() {
		return syscall.EIO
	}
	return ff.File.Sync()
}

func TestWriteErrorsFailClosed(t *testing.T) {
	tests := []struct {
		name    string
		inject  func(*faults)
		durable bool
		errno   error
	}{
		{"write fails under LogDurable", func(f *faults) { f.write.Store(true) }, true, syscall.ENOSPC},
		{"fsync fails under LogDurable", func(f *faults) { f.sync.Store(true) }, true, syscall.EIO},
		{"write fails under Log", func(f *faults) { f.write.Store(true) }, false, syscall.ENOSPC},
		{"fsync fails on the flush timer", func(f *faults) { f.sync.Store(true) }, false, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := logPath(t)
			var f faults
			var logs syncBuffer
			w := openT(t, Options{Path: path, FlushInterval: 5 * time.Millisecond, Logger: testLogger(&logs),
				wrapFile: func(file *os.File) logFile { return faultyFile{file, &f} }})
			ctx := context.Background()
			logRange(t, w, 0, 2)
			tt.inject(&f)

			if tt.durable {
				err := w.LogDurable(ctx, testEvent(2))
				if !errors.Is(err, ErrUnavailable) || !errors.Is(err, tt.errno) {
					t.Fatalf("LogDurable = %v, want ErrUnavailable wrapping %v", err, tt.errno)
				}
			} else {
				if err := w.Log(ctx, testEvent(2)); err != nil {
					t.Fatalf("Log = %v (the failure comes later)", err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for w.Healthy() == nil && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
			}
			if err := w.Healthy(); !errors.Is(err, ErrUnavailable) || !errors.Is(err, tt.errno) {
				t.Fatalf("Healthy = %v", err)
			}
			for _, log := range []func(context.Context, Event) error{w.Log, w.LogDurable} {
				if err := log(ctx, testEvent(3)); !errors.Is(err, ErrUnavailable) {
					t.Errorf("after failure: %v, want ErrUnavailable", err)
				}
			}
			s := w.Stats()
			if s.Rejected != 2 {
				t.Errorf("stats = %+v, want 2 rejected", s)
			}
			if wantFailed := uint64(0); tt.errno == syscall.ENOSPC {
				wantFailed = 1
				if s.Failed != wantFailed || s.Written != 2 {
					t.Errorf("stats = %+v, want 2 written, 1 failed", s)
				}
			}
			if !strings.Contains(logs.String(), "write failed") {
				t.Errorf("failure not logged: %q", logs.String())
			}
			if err := w.Close(ctx); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Close = %v, want the failure", err)
			}

			// After the operator fixes the disk, a restart continues the chain.
			w = openT(t, Options{Path: path})
			logRange(t, w, 10, 11)
			closeT(t, w)
			if rep := mustVerify(t, path); rep.Records < 3 {
				t.Errorf("after restart: %+v", rep)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(dir, "held.log")
	w := openT(t, Options{Path: held})
	_ = w
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no path", Options{}, "Path is required"},
		{"parent is a file", Options{Path: filepath.Join(file, "decisions.log")}, "not a directory"},
		{"negative size", Options{Path: filepath.Join(dir, "x.log"), MaxBytes: -1}, "negative"},
		{"bad policy", Options{Path: filepath.Join(dir, "x.log"), OnFull: 7}, "OnFull"},
		{"second writer", Options{Path: held}, "held by another writer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Open(context.Background(), tt.opts)
			if err == nil {
				w.Close(context.Background())
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRetention(t *testing.T) {
	tests := []struct {
		name      string
		maxFiles  int
		retention time.Duration
		step      time.Duration // clock advance per record
		wantMax   int           // rotated files left at most
	}{
		{"max files", 2, 0, time.Second, 2},
		{"max age", 0, 90 * time.Second, time.Minute, 2},
		{"both", 1, time.Hour, time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := logPath(t)
			clock := newFakeClock(t0)
			var logs syncBuffer
			w := openT(t, Options{Path: path, MaxBytes: 1, MaxFiles: tt.maxFiles, Retention: tt.retention,
				Clock: clock.Now, Logger: testLogger(&logs)})
			for i := range 10 { // MaxBytes 1: every record gets its own file
				logRange(t, w, i, i+1)
				clock.Add(tt.step)
			}
			closeT(t, w)
			files := mustFiles(t, path)
			if rotated := len(files) - 1; rotated > tt.wantMax || rotated < 1 {
				t.Errorf("%d rotated files left, want 1..%d: %v", rotated, tt.wantMax, files)
			}
			if !strings.Contains(logs.String(), "retention removed") {
				t.Errorf("deletions not logged")
			}
			rep := mustVerify(t, path)
			if rep.StartsAtGenesis() || rep.Records != len(files) {
				t.Errorf("report = %+v for %d files", rep, len(files))
			}
			if got, want := decisionIDs(t, path), wantIDs(10-len(files), 10); !slices.Equal(got, want) {
				t.Errorf("kept %v, want the newest %v", got, want)
			}

			// Retention also applies at Open, e.g. after MaxFiles is lowered.
			w = openT(t, Options{Path: path, MaxFiles: 0, Retention: time.Nanosecond, Clock: clock.Now})
			closeT(t, w)
			if files := mustFiles(t, path); len(files) != 1 || files[0] != path {
				t.Errorf("after Open with tiny retention: %v", files)
			}
		})
	}
}

// TestRetentionOnTimer: rotated files age out even when the log has stopped
// growing, so no rotation comes along to apply retention.
func TestRetentionOnTimer(t *testing.T) {
	path := logPath(t)
	clock := newFakeClock(t0)
	w := openT(t, Options{Path: path, MaxBytes: 1, Clock: clock.Now})
	logRange(t, w, 0, 3) // MaxBytes 1: two rotated files and the active one
	closeT(t, w)
	w = openT(t, Options{Path: path, Retention: time.Hour, Clock: clock.Now, FlushInterval: 5 * time.Millisecond})
	if files := mustFiles(t, path); len(files) != 3 {
		t.Fatalf("files %v, want 3", files)
	}
	clock.Add(2 * time.Hour)
	deadline := time.Now().Add(5 * time.Second)
	for len(mustFiles(t, path)) != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if files := mustFiles(t, path); len(files) != 1 || files[0] != path {
		t.Fatalf("after the retention period without records: %v, want only the active file", files)
	}
	closeT(t, w)
	if got, want := decisionIDs(t, path), wantIDs(2, 3); !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
}

func TestMaxAgeRotation(t *testing.T) {
	path := logPath(t)
	clock := newFakeClock(t0)
	w := openT(t, Options{Path: path, MaxAge: time.Hour, Clock: clock.Now, FlushInterval: 5 * time.Millisecond})
	logRange(t, w, 0, 2)
	clock.Add(59 * time.Minute)
	logRange(t, w, 2, 3)
	if s := w.Stats(); s.Rotations != 0 {
		t.Fatalf("rotated too early: %+v", s)
	}
	clock.Add(time.Minute)
	// The flush timer rotates an idle file once it is old enough.
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Rotations == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	logRange(t, w, 3, 4)
	closeT(t, w)
	files := mustFiles(t, path)
	if len(files) != 2 {
		t.Fatalf("files = %v", files)
	}
	if want := filepath.Join(filepath.Dir(path), "decisions-20261123T190000.000Z.log"); files[0] != want {
		t.Errorf("rotated file = %s, want %s", files[0], want)
	}
	if n := len(lines(t, files[0])); n != 3 {
		t.Errorf("rotated file has %d records, want 3", n)
	}
	if rep := mustVerify(t, path); rep.Records != 4 {
		t.Errorf("%+v", rep)
	}

	// A reopened file keeps its age, taken from its first record (18:03),
	// not from the Open (20:00).
	clock.Add(time.Hour)
	w = openT(t, Options{Path: path, MaxAge: 90 * time.Minute, Clock: clock.Now})
	logRange(t, w, 4, 5)
	closeT(t, w)
	if files := mustFiles(t, path); len(files) != 3 {
		t.Errorf("files after reopen = %v, want a rotation", files)
	}
}

func TestRotatedNamesStayOrderedWhenTheClockStalls(t *testing.T) {
	path := logPath(t)
	clock := newFakeClock(t0) // never advances
	w := openT(t, Options{Path: path, MaxBytes: 1, Clock: clock.Now})
	logRange(t, w, 0, 5)
	closeT(t, w)
	files := mustFiles(t, path)
	want := []string{
		"decisions-20261123T180000.000Z.log",
		"decisions-20261123T180000.001Z.log",
		"decisions-20261123T180000.002Z.log",
		"decisions-20261123T180000.003Z.log",
		"decisions.log",
	}
	var got []string
	for _, f := range files {
		got = append(got, filepath.Base(f))
	}
	if !slices.Equal(got, want) {
		t.Errorf("files = %v, want %v", got, want)
	}
	if got, want := decisionIDs(t, path), wantIDs(0, 5); !slices.Equal(got, want) {
		t.Errorf("order = %v", got)
	}
}

func TestStdout(t *testing.T) {
	var out bytes.Buffer
	w := openT(t, Options{Path: "-", stdout: &out, MaxBytes: 1})
	logRange(t, w, 0, 3)
	closeT(t, w)
	dir := t.TempDir()
	path := filepath.Join(dir, "copy.log")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify([]string{path})
	if err != nil || rep.Records != 3 || !rep.StartsAtGenesis() {
		t.Errorf("Verify(stdout copy) = %+v, %v", rep, err)
	}
}

// Records longer than the read buffers exercise ReadTail's growth and
// EachLine's long-line path.
func TestLongRecords(t *testing.T) {
	path := logPath(t)
	big := func(i int) Event {
		ev := testEvent(i)
		ev.Input.(map[string]any)["blob"] = strings.Repeat(string(rune('a'+i)), 150<<10)
		return ev
	}
	w := openT(t, Options{Path: path})
	for i := range 3 {
		if err := w.LogDurable(context.Background(), big(i)); err != nil {
			t.Fatal(err)
		}
	}
	closeT(t, w)
	line3 := lines(t, path)[2]
	appendFile(t, path, string(line3[:len(line3)-10]))
	_, err := Open(context.Background(), Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), "decisions.log:4:") {
		t.Fatalf("Open = %v, want truncated record at line 4", err)
	}
	w = openT(t, Options{Path: path, RepairTruncatedTail: true})
	if err := w.LogDurable(context.Background(), big(3)); err != nil {
		t.Fatal(err)
	}
	closeT(t, w)
	if rep := mustVerify(t, path); rep.Records != 4 {
		t.Errorf("%+v", rep)
	}
	evs, err := QueryAll(mustFiles(t, path), Filter{Limit: 10})
	if err != nil || len(evs) != 4 || len(evs[3].Input.(map[string]any)["blob"].(string)) != 150<<10 {
		t.Errorf("QueryAll: %d events, %v", len(evs), err)
	}
}

func TestOpenRefusesDamagedRotatedTail(t *testing.T) {
	path := logPath(t)
	w := openT(t, Options{Path: path, MaxBytes: 1})
	logRange(t, w, 0, 2)
	closeT(t, w)
	files := mustFiles(t, path)
	if err := os.Remove(path); err != nil { // as after a crash between rename and create
		t.Fatal(err)
	}
	appendFile(t, files[0], "{\"oops\":1}\n")
	_, err := Open(context.Background(), Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), filepath.Base(files[0])+":2:") {
		t.Fatalf("Open = %v, want the rotated file's line 2", err)
	}
}

func TestSyncIntervalAnswersAfterTheWrite(t *testing.T) {
	path := logPath(t)
	w := openT(t, Options{Path: path, Sync: SyncInterval, FlushInterval: time.Hour})
	logRange(t, w, 0, 3)
	// Written (a kill -9 now would not lose them), not yet fsynced.
	if n := len(lines(t, path)); n != 3 {
		t.Fatalf("%d lines in the file after 3 acknowledged records", n)
	}
	if st := w.Stats(); st.Syncs != 0 || st.Written != 3 {
		t.Fatalf("stats %+v", st)
	}
	if w.DurableHash() != GenesisHash {
		t.Fatal("DurableHash moved without an fsync")
	}
	closeT(t, w)
	rep := mustVerify(t, path)
	if rep.Records != 3 {
		t.Fatalf("records %d", rep.Records)
	}

	// SyncAlways (the default) fsyncs before answering, and DurableHash follows.
	w = openT(t, Options{Path: path, FlushInterval: time.Hour})
	logRange(t, w, 3, 4)
	if st := w.Stats(); st.Syncs != 1 {
		t.Fatalf("stats %+v", st)
	}
	if got := w.DurableHash(); got == rep.LastHash || got == GenesisHash {
		t.Fatal("DurableHash did not follow the fsync")
	}
	if _, err := Open(context.Background(), Options{Path: logPath(t), Sync: 7}); err == nil {
		t.Fatal("unknown Sync policy accepted")
	}
}

// TestRecoversAfterTheDiskIsFreed: a disk that fills up mid-record makes
// the writer fail closed; once writes work again it reopens the log on its
// own, cuts off the partial record and continues the chain, with no
// restart.
func TestRecoversAfterTheDiskIsFreed(t *testing.T) {
	for _, sync := range []SyncPolicy{SyncAlways, SyncInterval} {
		t.Run(fmt.Sprint("sync=", sync), func(t *testing.T) {
			path := logPath(t)
			var f faults
			var logs syncBuffer
			w := openT(t, Options{Path: path, Sync: sync, FlushInterval: 5 * time.Millisecond, RecoverAfter: 20 * time.Millisecond,
				Logger: testLogger(&logs), wrapFile: func(file *os.File) logFile { return faultyFile{file, &f} }})
			ctx := context.Background()
			logRange(t, w, 0, 3)

			f.partial.Store(true)
			f.write.Store(true)
			if err := w.LogDurable(ctx, testEvent(3)); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("LogDurable on a full disk = %v", err)
			}
			// Still full: recovery attempts fail (the fsync probe works, but the
			// next write fails again), and nothing is accepted in between
			// without being refused or failing.
			time.Sleep(60 * time.Millisecond)
			if err := w.Healthy(); err == nil {
				// A recovery may have reopened the file; the next write fails again.
				if err := w.LogDurable(ctx, testEvent(4)); !errors.Is(err, ErrUnavailable) {
					t.Fatalf("write on a still-full disk = %v", err)
				}
			}

			f.write.Store(false)
			deadline := time.Now().Add(5 * time.Second)
			for w.Healthy() != nil && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if err := w.Healthy(); err != nil {
				t.Fatalf("not recovered: %v\n%s", err, logs.String())
			}
			logRange(t, w, 10, 13)
			closeT(t, w)
			rep := mustVerify(t, path)
			if rep.Records != 6 {
				t.Errorf("%d records, want 3 before and 3 after (the failed ones are not in the chain)", rep.Records)
			}
			if !strings.Contains(logs.String(), "recovered") {
				t.Errorf("recovery not logged: %s", logs.String())
			}
		})
	}
}

// TestNoRecoveryWhenDisabled: RecoverAfter < 0 keeps the writer failed.
func TestNoRecoveryWhenDisabled(t *testing.T) {
	path := logPath(t)
	var f faults
	w := openT(t, Options{Path: path, FlushInterval: 5 * time.Millisecond, RecoverAfter: -1,
		wrapFile: func(file *os.File) logFile { return faultyFile{file, &f} }})
	f.write.Store(true)
	if err := w.LogDurable(context.Background(), testEvent(0)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("LogDurable = %v", err)
	}
	f.write.Store(false)
	time.Sleep(50 * time.Millisecond)
	if err := w.Healthy(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Healthy = %v, want still failed", err)
	}
	_ = w.Close(context.Background())
}
