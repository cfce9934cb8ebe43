package bytecache

import (
	"strconv"
	"testing"
)

// TestBoundedInBytes: whatever is put, the cache holds at most its budget,
// keeps the newest entry, and refuses an entry over a sixteenth of it.
func TestBoundedInBytes(t *testing.T) {
	const budget = 64 << 10
	c := New[int](budget)
	for i := range 100000 {
		c.Put(strconv.Itoa(i), i, int64(50+i%300))
		if b := c.Bytes(); b > budget {
			t.Fatalf("after %d puts: %d bytes, budget %d", i+1, b, budget)
		}
	}
	if v, ok := c.Get("99999"); !ok || v != 99999 {
		t.Fatal("newest entry lost")
	}
	if _, ok := c.Get("0"); ok {
		t.Fatal("the oldest entry survived 100k puts in 64 KiB")
	}
	c.Put("big", 1, budget/16+1)
	if _, ok := c.Get("big"); ok {
		t.Fatal("outsized entry cached")
	}
	// Entries of the old generation are still hits.
	c2 := New[int](1000)
	c2.Put("a", 1, 50)
	for i := range 10 {
		c2.Put(strconv.Itoa(i), i, 50) // fills young past half: a moves to old
	}
	if _, ok := c2.Get("a"); !ok {
		t.Error("an entry of the old generation is not a hit")
	}
	c2.Replace("a", 2, 50)
	if v, _ := c2.Get("a"); v != 2 {
		t.Errorf("Replace: %d", v)
	}
	if h, m, s := c.Stats(); h == 0 || m == 0 || s != 1 {
		t.Errorf("stats %d %d %d", h, m, s)
	}
}

// TestStaleIsAMiss: an entry GetFresh finds stale is not returned and is
// counted as a miss, so hit metrics count only answers served.
func TestStaleIsAMiss(t *testing.T) {
	c := New[int](1 << 10)
	c.Put("k", 1, 10)
	if _, ok := c.GetFresh("k", func(v int) bool { return v > 1 }); ok {
		t.Fatal("a stale entry was returned")
	}
	if v, ok := c.GetFresh("k", func(v int) bool { return v == 1 }); !ok || v != 1 {
		t.Fatal("a fresh entry was not returned")
	}
	if h, m, _ := c.Stats(); h != 1 || m != 1 {
		t.Errorf("hits %d misses %d, want 1 and 1", h, m)
	}
}
