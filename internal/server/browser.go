package server

import (
	"net"
	"net/http"
	"strings"

	"github.com/scopegate/scopegate/internal/forwardauth"
	"github.com/scopegate/scopegate/internal/request"
)

// guardBrowser protects a server with authentication off (loopback only, or
// --insecure-no-auth) from the browsers on the same machine. Any web page
// can make a browser send requests to 127.0.0.1: a DNS-rebinding page
// reaches it under its own host name and reads the answers (the auditor
// endpoints included), and any page can POST text/plain decisions into the
// log. So with auth off:
//   - the Host must be a loopback name (localhost, *.localhost), an IP
//     address (a rebinding page cannot make a browser send one), the host
//     of the configured address, or one of Options.AllowedHosts;
//   - a browser request must come from this server's own origin: an Origin
//     other than it, or Sec-Fetch-Site cross-site or same-site, is refused.
//
// curl and services send neither Origin nor Sec-Fetch-Site and pass; so
// does the /ui page, which scopegate serves itself. A forward-auth request
// that carries the forwarded method header is not checked: its Host, Origin
// and Sec-Fetch-Site are the end user's, passed on by the gateway (Caddy
// passes them all), and a page on another site cannot send that header
// without a CORS preflight, which scopegate never approves.
func (s *Server) guardBrowser(next http.Handler) http.Handler {
	if s.opts.Auth != nil && s.opts.Auth.Enabled() {
		return next
	}
	allowed := map[string]bool{}
	for _, h := range s.opts.AllowedHosts {
		allowed[strings.ToLower(h)] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == forwardauth.Path && forwardauth.Forwarded(r.Header) {
			next.ServeHTTP(w, r)
			return
		}
		if why := s.browserRefusal(r, allowed); why != "" {
			s.metrics.authFailures.WithLabelValues("forbidden").Inc()
			writeError(w, http.StatusForbidden, &request.Error{Code: "forbidden", Message: why})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// browserRefusal says why r is refused, or "".
func (s *Server) browserRefusal(r *http.Request, allowed map[string]bool) string {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"), net.ParseIP(host) != nil, allowed[host]:
	default:
		return "Host " + r.Host + " is not this server's: with authentication off, scopegate answers only to loopback names, IP addresses and --allowed-host (a web page may be rebinding its DNS name to this machine)"
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return "a browser request from another site: with authentication off, scopegate answers browsers only from its own pages"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		if !strings.EqualFold(origin, scheme+"://"+r.Host) {
			return "a browser request from origin " + origin + ": with authentication off, scopegate answers browsers only from its own pages"
		}
	}
	return ""
}
