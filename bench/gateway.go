package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scopegate/scopegate/internal/gatewayconf"
	"github.com/scopegate/scopegate/internal/testpki"
)

// gateway measures forward auth through the real nginx, on the README's
// configuration (examples/gateway/nginx.conf), against the same questions
// asked directly on /v1/decide: routes with fresh ids, one access token per
// scope set (64), about two thirds denied. Each token is verified on every
// request either way; decisions are cached by route and scopes (the
// agreement check has warmed that cache for both). nginx adds its own hop (the subrequest) and, on an
// allow, the proxied request to a trivial app.
func gateway(ctx context.Context, cfg config) error {
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if nginx, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			return fmt.Errorf("nginx not found (apt-get install nginx-light): %w", err)
		}
	}
	out, err := filepath.Abs(cfg.out)
	if err != nil {
		return err
	}
	is, err := testpki.NewIssuerIn(out)
	if err != nil {
		return err
	}
	questions, err := gatewayQuestions(is, cfg.bodies)
	if err != nil {
		return err
	}
	const gwToken = "bench-gateway-0123456789abcdef"
	tokens := filepath.Join(out, "gateway-tokens")
	if err := os.WriteFile(tokens, []byte("gateway "+gwToken+"\n"), 0o600); err != nil {
		return err
	}
	sg := &server{name: "scopegate-gw", ready: "/ready", decide: "/v1/decide", bin: cfg.scopegate}
	sg.args = append([]string{"serve", "--log-level", "warn", "--decision-log", filepath.Join(out, "gateway.log"), "--auth-tokens", tokens,
		"--token-issuer", "https://id.example.com", "--token-audience", "https://api.example.com", "--token-jwks", is.JWKS},
		strings.Fields(cfg.serveArgs)...)
	stopSG, err := start(cfg, sg, sg.bin, sg.args)
	if err != nil {
		return err
	}
	defer stopSG()

	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(app, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
	gwAddr, stopNginx, err := startNginx(nginx, out, strings.TrimPrefix(sg.base, "http://"), app.Addr().String(), gwToken)
	if err != nil {
		return err
	}
	defer stopNginx()

	direct := &server{name: "direct-decide", base: sg.base}
	viaNginx := &server{name: "nginx-forward-auth", base: "http://" + gwAddr}
	if direct.targets, err = gatewayTargets(out, direct, questions, func(q question) map[string]any {
		b, _ := json.Marshal(map[string]string{"access_token": q.token, "method": q.method, "path": q.path})
		return map[string]any{"method": "POST", "url": sg.base + "/v1/decide", "body": base64.StdEncoding.EncodeToString(b),
			"header": map[string][]string{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + gwToken}}}
	}); err != nil {
		return err
	}
	if viaNginx.targets, err = gatewayTargets(out, viaNginx, questions, func(q question) map[string]any {
		return map[string]any{"method": q.method, "url": "http://" + gwAddr + q.path, "header": map[string][]string{"Authorization": {"Bearer " + q.token}}}
	}); err != nil {
		return err
	}
	denied, err := gatewayAgree(sg.base, gwAddr, gwToken, questions[:min(len(questions), 2000)])
	if err != nil {
		return err
	}
	fmt.Printf("gateway: %d questions (%d tokens); nginx's status matches /v1/decide on each of the first %d, %.0f%% denied\n",
		len(questions), 64, min(len(questions), 2000), 100*denied)

	var rates = map[string][]float64{}
	for round := range cfg.rounds {
		for _, s := range []*server{direct, viaNginx} {
			rep, err := attack(ctx, cfg, s, []string{"-rate=0", "-max-workers=" + strconv.Itoa(cfg.workers), "-workers=" + strconv.Itoa(cfg.workers)})
			if err != nil {
				return err
			}
			for code := range rep.StatusCodes {
				if code != "200" && code != "401" && code != "403" {
					return fmt.Errorf("%s: status codes %v, errors %v", s.name, rep.StatusCodes, firstN(rep.Errors, 3))
				}
			}
			// Denies are answers here, so the rate of answers, not of 2xx.
			rates[s.name] = append(rates[s.name], rep.Rate)
			fmt.Printf("round %d: %-20s %8.0f req/s  p50 %.2f ms  p99 %.2f ms\n", round+1, s.name, rep.Rate,
				float64(rep.Latencies.P50)/1e6, float64(rep.Latencies.P99)/1e6)
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\n(%d connections, %s steps, %d rounds)\tmedian req/s\trounds\n", cfg.workers, cfg.duration, cfg.rounds)
	for _, n := range []string{direct.name, viaNginx.name} {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\n", n, median(rates[n]), joinF(rates[n]))
	}
	fmt.Fprintf(tw, "nginx forward auth / direct /v1/decide\t%.2f\t\n", median(rates[viaNginx.name])/median(rates[direct.name]))
	return tw.Flush()
}

// question is one gateway request: a route with a fresh id, and the token
// of one of 64 scope sets.
type question struct{ method, path, token string }

func gatewayQuestions(is *testpki.Issuer, n int) ([]question, error) {
	bodies, err := diverseBodies(2*n, false) // half are routes
	if err != nil {
		return nil, err
	}
	tokens := map[string]string{}
	var out []question
	for _, b := range bodies {
		var q struct {
			Method, Path  string
			GrantedScopes []string `json:"granted_scopes"`
		}
		if err := json.Unmarshal(b, &q); err != nil {
			return nil, err
		}
		if q.Method == "" {
			continue
		}
		key := strings.Join(q.GrantedScopes, " ")
		tok, ok := tokens[key]
		if !ok {
			tok, err = is.Sign("at+jwt", map[string]any{"iss": "https://id.example.com", "aud": "https://api.example.com",
				"sub": fmt.Sprintf("user-%d", len(tokens)), "client_id": "bench-client",
				"exp": time.Now().Add(24 * time.Hour).Unix(), "scope": key})
			if err != nil {
				return nil, err
			}
			tokens[key] = tok
		}
		out = append(out, question{q.Method, q.Path, tok})
	}
	return out, nil
}

func gatewayTargets(dir string, s *server, qs []question, target func(question) map[string]any) (string, error) {
	path := filepath.Join(dir, s.name+".targets")
	var buf strings.Builder
	for _, q := range qs {
		line, err := json.Marshal(target(q))
		if err != nil {
			return "", err
		}
		buf.Write(append(line, '\n'))
	}
	return path, os.WriteFile(path, []byte(buf.String()), 0o644)
}

// gatewayAgree checks that nginx lets through exactly what /v1/decide
// allows, and answers a deny with 403 (401 for a token problem).
func gatewayAgree(decideBase, gwAddr, gwToken string, qs []question) (float64, error) {
	denied := 0
	for _, q := range qs {
		b, _ := json.Marshal(map[string]string{"access_token": q.token, "method": q.method, "path": q.path})
		req, _ := http.NewRequest("POST", decideBase+"/v1/decide", strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+gwToken)
		var d struct {
			Allow  bool
			Reason string
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		err = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		req, _ = http.NewRequest(q.method, "http://"+gwAddr+q.path, nil)
		req.Header.Set("Authorization", "Bearer "+q.token)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		want := 403
		switch {
		case d.Allow:
			want = 200
		case d.Reason == "invalid_token" || d.Reason == "missing_token":
			want = 401
		}
		if resp.StatusCode != want {
			return 0, fmt.Errorf("%s %s: nginx %d, /v1/decide %+v", q.method, q.path, resp.StatusCode, d)
		}
		if !d.Allow {
			denied++
		}
	}
	return float64(denied) / float64(len(qs)), nil
}

// startNginx runs nginx (one process) on examples/gateway/nginx.conf with
// its addresses and gateway token replaced.
func startNginx(bin, out, scopegate, app, gwToken string) (string, func(), error) {
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	raw, err := os.ReadFile("examples/gateway/nginx.conf")
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(out, "nginx")
	conf, err := gatewayconf.WriteNginx(dir, gatewayconf.Rewrite(string(raw), scopegate, app, addr, gwToken))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("nginx did not listen on %s (see %s/error.log)", addr, dir)
		}
	}
}
