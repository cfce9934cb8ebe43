package connlimit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestNewClientServedPastTheLimit: more idle connections than the bound,
// keep-alive ones after a request and silent ones that never sent one, and
// a new client still gets an answer; the gate never tracks more than the
// bound.
func TestNewClientServedPastTheLimit(t *testing.T) {
	const limit = 20
	gate := New(limit, time.Hour) // only the bound sheds here, not the short idle
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.Config.ConnState = gate.ConnState
	srv.Start()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range 2 * limit {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if i%2 == 0 { // a keep-alive connection, idle after one request
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Millisecond) // distinct ages
		if n := gate.Open(); n > limit {
			t.Fatalf("%d connections tracked, bound %d", n, limit)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("a new client past %d held connections: %v", len(held), err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(b)) != "ok" || gate.Shed() < limit {
		t.Fatalf("answer %q, shed %d", b, gate.Shed())
	}
}

// TestShortIdleUnderPressure: past three quarters of the bound, a
// connection idle longer than the short keep-alive is closed.
func TestShortIdleUnderPressure(t *testing.T) {
	now := time.Unix(0, 0)
	g := New(8, time.Second)
	g.now = func() time.Time { return now }
	a, b := net.Pipe()
	defer b.Close()
	g.ConnState(a, http.StateNew)
	g.ConnState(a, http.StateIdle)
	now = now.Add(2 * time.Second)
	fresh := func() {
		c, d := net.Pipe()
		t.Cleanup(func() { c.Close(); d.Close() })
		g.ConnState(c, http.StateNew)
	}
	for range 4 {
		fresh()
	}
	if g.Open() != 5 || g.Shed() != 0 {
		t.Fatalf("below pressure: open %d shed %d", g.Open(), g.Shed())
	}
	fresh() // 6 of 8: pressure
	if g.Shed() != 1 || g.Open() != 5 {
		t.Fatalf("under pressure: open %d shed %d", g.Open(), g.Shed())
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Error("the long-idle connection was not closed")
	}
}
