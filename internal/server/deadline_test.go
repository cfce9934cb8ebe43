package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/policyvariant"
	"github.com/scopegate/scopegate/internal/server"
)

// TestSlowPolicyIsADeny: a policy that would run for hours on one question
// is stopped at the decision deadline and answered as a policy_error deny
// naming it, never left holding the request; other questions still decide.
func TestSlowPolicyIsADeny(t *testing.T) {
	src := repoSource(t)
	const field = `"allow": allow,`
	// Only the action "slow" spins: the rest of the policy is unchanged.
	err := policyvariant.EditAuthz(src.Modules, func(authz string) (string, error) {
		if !strings.Contains(authz, field) {
			return "", errors.New("authz.rego no longer has " + field)
		}
		return strings.Replace(authz, field, field+` "spin": spin,`, 1) +
			"\nspin := count([1 | input.action == \"slow\"; some i in numbers.range(1, 100000); some j in numbers.range(1, 100000)])\n", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(context.Background(), src, engine.WithEvalTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	url := newTestServer(t, server.New(eng, server.Options{})) + "/v1/decide"
	for _, tc := range []struct{ body, reason, explain string }{
		{`{"granted_scopes":["user:read"],"action":"slow"}`, "policy_error", "exceeded its deadline (100ms)"},
		{`{"granted_scopes":["user:read"],"action":"user:read"}`, "allowed", ""},
	} {
		resp, err := http.Post(url, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Allow   bool     `json:"allow"`
			Reason  string   `json:"reason"`
			Explain []string `json:"explain"`
		}
		err = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || d.Reason != tc.reason || (tc.explain != "" && !strings.Contains(strings.Join(d.Explain, " "), tc.explain)) {
			t.Errorf("%s: %d %+v %v", tc.body, resp.StatusCode, d, err)
		}
	}
}
