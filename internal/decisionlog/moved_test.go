package decisionlog

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLogMovedUnderTheWriter: the active file deleted, or renamed away,
// under a running writer. The next record goes to a new file at the
// configured path, after a record saying what happened; the writer stays
// healthy and counts the reopen; a quiet log notices within a flush
// interval. Before, records went on into the unlinked inode and were lost
// at the next restart while everything said healthy.
func TestLogMovedUnderTheWriter(t *testing.T) {
	ctx := context.Background()
	for _, move := range []string{"delete", "rename"} {
		t.Run(move, func(t *testing.T) {
			path := logPath(t)
			w := openT(t, Options{Path: path, FlushInterval: 20 * time.Millisecond})
			if err := w.LogDurable(ctx, testEvent(0)); err != nil {
				t.Fatal(err)
			}
			if move == "delete" {
				os.Remove(path)
			} else {
				os.Rename(path, path+".old")
			}
			if err := w.LogDurable(ctx, testEvent(1)); err != nil {
				t.Fatalf("record after the move: %v", err)
			}
			if w.Healthy() != nil || w.Stats().Reopens != 1 {
				t.Fatalf("healthy %v, reopens %d", w.Healthy(), w.Stats().Reopens)
			}
			// A quiet log: moved again, noticed by the timer alone.
			os.Remove(path)
			deadline := time.Now().Add(5 * time.Second)
			for w.Stats().Reopens < 2 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if w.Stats().Reopens != 2 {
				t.Fatalf("a quiet moved log was not noticed: reopens %d", w.Stats().Reopens)
			}
			if err := w.LogDurable(ctx, testEvent(2)); err != nil {
				t.Fatal(err)
			}
			closeT(t, w)
			evs, err := QueryAll([]string{path}, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 2 || evs[0].Reason != ReasonLogReopened || evs[1].DecisionID != testEvent(2).DecisionID {
				t.Fatalf("records at the path: %+v", evs)
			}
			if !strings.Contains(evs[0].Result.(map[string]any)["explain"].(string), "deleted, renamed or replaced") {
				t.Errorf("reopen record: %+v", evs[0].Result)
			}
		})
	}
}

// TestSecondWriterThroughALink: a second writer that reaches the active
// file under another name (a symlink, a hard link) is refused, as one on
// the same path is: two writers would fork the chain.
func TestSecondWriterThroughALink(t *testing.T) {
	path := logPath(t)
	w := openT(t, Options{Path: path})
	defer closeT(t, w)
	if err := w.LogDurable(context.Background(), testEvent(0)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sym, hard := dir+"/sym.log", dir+"/hard.log"
	if err := os.Symlink(path, sym); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, hard); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, sym, hard} {
		w2, err := Open(context.Background(), Options{Path: p})
		if err == nil {
			w2.Close(context.Background())
			t.Errorf("a second writer opened %s", p)
		} else if !strings.Contains(err.Error(), "another writer") && !strings.Contains(err.Error(), "held by another writer") {
			t.Errorf("%s: %v", p, err)
		}
	}
}
