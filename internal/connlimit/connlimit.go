// Package connlimit keeps an HTTP server's connections below a bound, so
// that idle or stalled clients cannot use up the process's file
// descriptors and lock everyone else out. It watches connection states
// (http.Server.ConnState): when a new connection would take the count past
// the bound it closes the connection that has been idle longest (a
// keep-alive connection between requests, or one that has not sent a
// request yet), and under pressure (three quarters of the bound) it closes
// connections idle for longer than a short keep-alive. Connections serving
// a request are never closed by it.
package connlimit

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Gate tracks one server's connections.
type Gate struct {
	max       int
	shortIdle time.Duration
	now       func() time.Time

	mu    sync.Mutex
	conns map[net.Conn]*conn

	shed atomic.Uint64
}

type conn struct {
	state http.ConnState
	since time.Time // when it entered state
}

// New returns a Gate for at most max connections that, under pressure,
// closes connections idle for longer than shortIdle.
func New(max int, shortIdle time.Duration) *Gate {
	return &Gate{max: max, shortIdle: shortIdle, now: time.Now, conns: map[net.Conn]*conn{}}
}

// ConnState is the http.Server.ConnState hook.
func (g *Gate) ConnState(c net.Conn, st http.ConnState) {
	var shed []net.Conn
	g.mu.Lock()
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(g.conns, c)
	case http.StateNew:
		g.conns[c] = &conn{state: st, since: g.now()}
		if len(g.conns)*4 >= g.max*3 {
			shed = g.relieve(c)
		}
	default:
		if info, ok := g.conns[c]; ok {
			info.state, info.since = st, g.now()
		}
	}
	g.mu.Unlock()
	// Outside the lock: closing a TLS connection may wait on its peer.
	for _, c := range shed {
		_ = c.Close()
		g.shed.Add(1)
	}
}

// relieve runs under pressure, as c arrives: it closes every connection
// idle for longer than shortIdle and, if that is not enough to stay within
// the bound, the one idle longest (or c itself, when every other one is
// serving a request).
func (g *Gate) relieve(arrived net.Conn) (shed []net.Conn) {
	now := g.now()
	drop := func(c net.Conn) {
		delete(g.conns, c) // its StateClosed may come later, or never for a new one
		shed = append(shed, c)
	}
	var oldest net.Conn
	var oldestSince time.Time
	for c, info := range g.conns {
		if c == arrived || info.state == http.StateActive {
			continue
		}
		if now.Sub(info.since) > g.shortIdle {
			drop(c)
			continue
		}
		if oldest == nil || info.since.Before(oldestSince) {
			oldest, oldestSince = c, info.since
		}
	}
	if len(g.conns) <= g.max {
		return shed
	}
	if oldest == nil {
		oldest = arrived
	}
	drop(oldest)
	return shed
}

// Open is the number of connections tracked now.
func (g *Gate) Open() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Shed counts the connections the gate closed.
func (g *Gate) Shed() uint64 { return g.shed.Load() }

// reserve is what DefaultMax leaves of the file-descriptor limit for the
// process's own files: decision log, bundles, outgoing connections.
const reserve = 128

// DefaultMax is the connection bound below the process's file-descriptor
// limit: the limit less a reserve, at most 10,000 (and 10,000 if the limit
// is unknown).
func DefaultMax() int {
	n := fdLimit()
	if n <= 0 {
		return 10000
	}
	return max(min(n-reserve, 10000), 16)
}
