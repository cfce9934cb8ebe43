package redact_test

import (
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/redact"
)

const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTRUNSRVQtNSJ9.c2lnbmF0dXJlLTU" // {"alg":"HS256"}

func TestIsSecretKey(t *testing.T) {
	for k, want := range map[string]bool{
		"password": true, "DB_Password": true, "client_secret": true, "private_key": true, "privateKey": true,
		"session": true, "Session-Id": true, "api_key": true, "X-Api-Key": true, "Cookie": true, "set-cookie": true,
		"Authorization": true, "Proxy-Authorization": true, "access_token": true, "credentials": true,
		"owner": false, "id": false, "type": false, "scope": false, "user": false, "tenant": false,
	} {
		if got := redact.IsSecretKey(k); got != want {
			t.Errorf("IsSecretKey(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestSecretStrings(t *testing.T) {
	for s, want := range map[string]bool{
		jwt:                                     true,
		"Bearer abc.def":                        true,
		"  bearer\tsomething":                   true,
		"token is " + jwt + " here":             true,
		"access_token=" + jwt:                   true,
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.": true,  // unsecured: empty signature
		"eyJub3QganNvbg.eyJ4IjoxfQ.sig":         false, // header is not JSON
		"eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ":       false, // two segments
		"project:read":                          false,
		"Bearer":                                false,
		"xeyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.s":    true, // glued to a word, still a token
	} {
		if got := redact.IsSecretString(s); got != want {
			t.Errorf("IsSecretString(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestMaskJWTs(t *testing.T) {
	got, ok := redact.MaskJWTs("token grants " + jwt + ", user:read; and " + jwt + ".")
	if !ok || got != "token grants ***, user:read; and ***." {
		t.Errorf("MaskJWTs = %q, %v", got, ok)
	}
	if got, ok := redact.MaskJWTs("user:read project:write"); ok || got != "user:read project:write" {
		t.Errorf("MaskJWTs without a JWT = %q, %v", got, ok)
	}
}

// FuzzMaskJWTs: whatever the text, nothing JWT-shaped survives masking, and
// text without a JWT is left alone.
func FuzzMaskJWTs(f *testing.F) {
	f.Add("token grants " + jwt + ", user:read")
	f.Add(jwt + "." + jwt)
	f.Add("eyJ.eyJ.eyJ")
	f.Add(strings.Repeat("eyJhbGciOiJIUzI1NiJ9.", 5))
	f.Fuzz(func(t *testing.T, s string) {
		out, ok := redact.MaskJWTs(s)
		if redact.ContainsJWT(out) {
			t.Fatalf("MaskJWTs(%q) = %q still holds a JWT", s, out)
		}
		if ok != redact.ContainsJWT(s) || (!ok && out != s) {
			t.Fatalf("MaskJWTs(%q) = %q, %v", s, out, ok)
		}
	})
}
