package policyvariant

import (
	"os"
	"strings"
	"testing"
)

func TestRequireAlso(t *testing.T) {
	raw, err := os.ReadFile("../../policies/authz.rego")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Owner(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "count(matched) > 0\n\towner_ok\n}") || !strings.Contains(got, "default owner_ok := true") {
		t.Errorf("the owner condition is not on the allowed rule:\n%s", got)
	}
	if _, err := RequireAlso("package x\n", "c", ""); err == nil {
		t.Error("a policy without the allowed rule was edited")
	}
	if err := EditAuthz(map[string]string{"p/actions.rego": ""}, Owner); err == nil {
		t.Error("modules without authz.rego were accepted")
	}
}
