package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/source"
)

// slowPolicy's decision iterates 10^10 times: without a deadline it would
// hold the request for hours.
const slowPolicy = `package scopegate.authz

spin := count([1 | some i in numbers.range(1, 100000); some j in numbers.range(1, 100000)])

decision := {"allow": false, "reason": "missing_scope", "required_any_of": [], "granted_effective": [],
	"matched": [], "missing": [], "sensitive": false, "explain": [sprintf("%d", [spin])]}
`

func TestEvaluationDeadline(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	src.Modules = map[string]string{"slow.rego": slowPolicy}
	e, err := New(context.Background(), src, WithEvalTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d, err := e.DecideInput(context.Background(), Input{Action: "user:read", GrantedScopes: []string{"user:read"}}, Options{})
	if err == nil || d.Allow || d.Reason != ReasonPolicyError || !strings.Contains(d.Explain[0], "deadline (50ms)") {
		t.Fatalf("decision %+v, err %v: want a policy_error naming the deadline", d, err)
	}
	// Not a timing target: only proof the evaluation was stopped rather
	// than run to completion (which takes hours).
	if took := time.Since(start); took > time.Minute {
		t.Fatalf("evaluation ran %s past a 50ms deadline", took)
	}
}
