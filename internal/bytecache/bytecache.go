// Package bytecache is a cache bounded in bytes, not entries: whatever
// keys callers send, it holds at most its budget. Entries live in two
// generations; when the young one has taken half the budget it becomes
// the old one and the previous old one is dropped, so what is still asked
// for survives (a Get from the old generation is still a hit) at the cost
// of one map write per insert, without per-entry bookkeeping.
package bytecache

import (
	"sync"
	"sync/atomic"
)

// Cache maps string keys to V. The caller says what each entry costs.
type Cache[V any] struct {
	mu         sync.RWMutex
	young, old map[string]V
	// youngBytes and oldBytes are the charged sizes of the generations.
	youngBytes, oldBytes int64
	maxBytes             int64

	hits, misses, skipped atomic.Uint64
}

// New returns a cache of maxBytes.
func New[V any](maxBytes int64) *Cache[V] {
	return &Cache[V]{young: map[string]V{}, old: map[string]V{}, maxBytes: maxBytes}
}

// Get returns the entry under key.
func (c *Cache[V]) Get(key string) (V, bool) { return c.GetFresh(key, nil) }

// GetFresh returns the entry under key if fresh (nil: any) says it is
// still good; a stale entry counts as a miss, not a hit.
func (c *Cache[V]) GetFresh(key string, fresh func(V) bool) (V, bool) {
	c.mu.RLock()
	v, ok := c.young[key]
	if !ok {
		v, ok = c.old[key]
	}
	c.mu.RUnlock()
	if ok && fresh != nil && !fresh(v) {
		var zero V
		v, ok = zero, false
	}
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return v, ok
}

// Put remembers v under key, charged size bytes (what the key, the value
// and the map entry hold). An entry over a sixteenth of the budget is not
// kept (Skip counts it): outsized entries would crowd out the common ones.
// A key already cached keeps its entry.
func (c *Cache[V]) Put(key string, v V, size int64) {
	if size > c.maxBytes/16 {
		c.Skip()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.young[key]; ok {
		return
	}
	if c.youngBytes+size > c.maxBytes/2 {
		c.old, c.oldBytes = c.young, c.youngBytes
		c.young, c.youngBytes = map[string]V{}, 0
	}
	c.young[key] = v
	c.youngBytes += size
}

// Replace is Put for an entry that may replace a cached one (found stale
// by GetFresh). The old entry's charge stays until its generation goes.
func (c *Cache[V]) Replace(key string, v V, size int64) {
	c.mu.Lock()
	delete(c.young, key)
	c.mu.Unlock()
	c.Put(key, v, size)
}

// Skip counts an entry the caller chose not to cache.
func (c *Cache[V]) Skip() { c.skipped.Add(1) }

// Bytes is what the cache holds now, as charged.
func (c *Cache[V]) Bytes() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.youngBytes + c.oldBytes
}

// Stats are the counters: hits, misses, entries not cached.
func (c *Cache[V]) Stats() (hits, misses, skipped uint64) {
	return c.hits.Load(), c.misses.Load(), c.skipped.Load()
}
