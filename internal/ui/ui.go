// Package ui serves scopegate's web page for auditors and security teams
// at /ui: the decision log with filters and chain verification, the scope
// catalog drawn as an inclusion graph, a try-it panel for /v1/decide and
// the least-privilege advisor.
//
// The page is static HTML, CSS and vanilla JavaScript embedded in the
// binary: no framework, nothing fetched from elsewhere. Every piece of data
// it shows comes from the API (/v1/admin/* for the decision log, the
// advisor and the policy's actions; /v1/scopes and /v1/decide), through the
// same authentication as any other caller: when auth is on the user pastes
// an admin token into the page, which keeps it in sessionStorage and sends
// it as a bearer token on every fetch. The assets themselves hold no data
// and are served without credentials (a browser cannot attach a bearer
// token to a page load); a strict Content-Security-Policy allows only the
// page's own script, styles and API calls.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every asset: only the page's own
// files, no inline script or style, no framing, API calls to this origin.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page under /ui/ (and redirects /ui to it).
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/ui" {
			http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
			return
		}
		files.ServeHTTP(w, r)
	})
}
