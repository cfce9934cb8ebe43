package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/testpki"
)

// TestServeAccessTokens: serve verifies JWT access tokens sent as
// access_token and decides on what they grant; a refused token is an
// invalid_token deny naming the check; contradictions are 400s; the token
// is never written to disk.
func TestServeAccessTokens(t *testing.T) {
	is := testpki.NewIssuer(t)
	dir := t.TempDir()
	srv := startServe(t, dir, "--decision-log", filepath.Join(dir, "logs", "decisions.log"),
		"--token-issuer", "https://id.example.com", "--token-audience", "https://api.example.com", "--token-jwks", is.JWKS)
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"iss": "https://id.example.com", "aud": "https://api.example.com", "sub": "user-7",
			"client_id": "translator-bot", "jti": "j-1", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
			"scope": "openid profile user:read project:write"}
		if edit != nil {
			edit(c)
		}
		return c
	}
	good := is.Token(t, "at+jwt", claims(nil))
	expired := is.Token(t, "at+jwt", claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))
	typJWT := is.Token(t, "JWT", claims(nil))
	post := func(path string, body map[string]any) (int, map[string]any) {
		raw, _ := json.Marshal(body)
		resp, err := http.Post(srv.url+path, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	if code, d := post("/v1/decide", map[string]any{"access_token": good, "action": "project:read"}); code != 200 || d["allow"] != true ||
		fmt.Sprint(d["foreign_scopes"]) != "[openid profile]" {
		t.Errorf("valid token (with OIDC's openid and profile): %d %v", code, d)
	}
	if code, d := post("/v1/decide", map[string]any{"access_token": good, "action": "project:launch"}); code != 200 || d["reason"] != "missing_scope" ||
		d["www_authenticate"] != `Bearer error="insufficient_scope", scope="project:launch"` {
		t.Errorf("valid token, missing scope: %d %v", code, d)
	}
	for _, tc := range []struct{ name, tok, check string }{{"expired", expired, "exp:"}, {"typ JWT", typJWT, "typ:"}, {"garbage", "a.b.c", "malformed:"}} {
		code, d := post("/v1/decide", map[string]any{"access_token": tc.tok, "action": "project:read"})
		explain, _ := json.Marshal(d["explain"])
		challenge, _ := d["www_authenticate"].(string)
		if code != 200 || d["allow"] != false || d["reason"] != "invalid_token" || !strings.Contains(string(explain), tc.check) ||
			!strings.HasPrefix(challenge, `Bearer error="invalid_token", error_description="the access token was refused: `+tc.check) {
			t.Errorf("%s: %d %v", tc.name, code, d)
		}
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"access_token": good, "granted_scopes": []string{"user:read"}, "action": "user:read"}, "access_token"},
		{map[string]any{"access_token": good, "subject": "someone-else", "action": "user:read"}, "subject"},
		{map[string]any{"access_token": good, "client_id": "other-app", "action": "user:read"}, "client_id"},
		{map[string]any{"access_token": strings.Repeat("a", 9000), "action": "user:read"}, "access_token"},
	} {
		code, d := post("/v1/decide", tc.body)
		e, _ := d["error"].(map[string]any)
		if code != 400 || e["field"] != tc.field {
			t.Errorf("%v: %d %v", tc.body["subject"], code, d)
		}
	}
	code, d := post("/v1/decide/batch", map[string]any{"access_token": good, "checks": []map[string]any{{"action": "project:read"}, {"action": "project:launch"}}})
	results, _ := d["results"].([]any)
	if code != 200 || len(results) != 2 || results[0].(map[string]any)["allow"] != true || results[1].(map[string]any)["allow"] != false {
		t.Errorf("batch with a token: %d %v", code, d)
	}
	srv.stop(t)

	// The log holds who asked (from the token) and never the token.
	err := filepath.WalkDir(filepath.Join(dir, "logs"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, tok := range []string{good, expired, typJWT} {
			if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte(tok[len(tok)-40:])) {
				t.Errorf("%s holds a token", p)
			}
		}
		if filepath.Base(p) == "decisions.log" {
			sum := sha256.Sum256([]byte(good))
			for _, want := range []string{`"subject":"user-7"`, `"jti":"j-1"`, `"iss":"https://id.example.com"`, `"sha256":"` + hex.EncodeToString(sum[:]) + `"`} {
				if !bytes.Contains(b, []byte(want)) {
					t.Errorf("the log does not hold %s", want)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A server with no issuer configured refuses tokens as bad input.
	plain := startServe(t, t.TempDir())
	raw, _ := json.Marshal(map[string]any{"access_token": good, "action": "user:read"})
	resp, err := http.Post(plain.url+"/v1/decide", "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"field":"access_token"`) || !strings.Contains(string(b), "--token-issuer") {
		t.Errorf("no issuer configured: %d %s", resp.StatusCode, b)
	}
}

// TestDecideWithAToken: scopegate decide --token verifies the token as serve
// does, and decides on what it grants.
func TestDecideWithAToken(t *testing.T) {
	is := testpki.NewIssuer(t)
	flags := []string{"decide", "--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies"),
		"--token-issuer", "iss", "--token-audience", "aud", "--token-jwks", is.JWKS, "--action", "project:read"}
	claims := map[string]any{"iss": "iss", "aud": "aud", "sub": "u", "client_id": "c", "exp": time.Now().Add(time.Hour).Unix(), "scope": "openid project:write"}
	good := is.Token(t, "at+jwt", claims)
	if out, errOut, code := runCLI(t, append(flags, "--token", good)...); code != 0 || !strings.HasPrefix(out, "allow") {
		t.Errorf("valid token: exit %d: %s%s", code, out, errOut)
	}
	claims["exp"] = time.Now().Add(-time.Hour).Unix()
	if out, _, code := runCLI(t, append(flags, "--token", is.Token(t, "at+jwt", claims))...); code != 3 || !strings.Contains(out, "deny (invalid_token)") {
		t.Errorf("expired token: exit %d: %s", code, out)
	}
	if _, errOut, code := runCLI(t, "decide", "--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies"), "--token", good, "--action", "user:read"); code != 2 || !strings.Contains(errOut, "--token-issuer") {
		t.Errorf("no issuer: exit %d: %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, append(flags, "--token", good, "--scopes", "user:read")...); code != 2 || !strings.Contains(errOut, "--token") {
		t.Errorf("token and scopes: exit %d: %s", code, errOut)
	}
}

// TestREADMEDemoToken: the demo issuer in examples/tokens decides as the
// README shows.
func TestREADMEDemoToken(t *testing.T) {
	tok, err := os.ReadFile(repoPath("examples/tokens/access_token.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "decide", "--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies"),
		"--token-issuer", "https://id.example.com", "--token-audience", "https://api.example.com",
		"--token-jwks", repoPath("examples/tokens/jwks.json"), "--token", strings.TrimSpace(string(tok)),
		"--method", "POST", "--path", "/projects/42/launch", "--json")
	var d map[string]any
	if err := json.Unmarshal([]byte(out), &d); err != nil || code != 3 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if d["reason"] != "missing_scope" || fmt.Sprint(d["foreign_scopes"]) != "[openid profile]" ||
		d["www_authenticate"] != `Bearer error="insufficient_scope", scope="project:launch"` {
		t.Errorf("demo token: %v", d)
	}
}
