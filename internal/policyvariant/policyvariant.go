// Package policyvariant makes variants of the reference policy for tests
// and benchmarks: policies/authz.rego with one more condition on its
// "allowed" rule (an owner check, an acr check), or any other edit of that
// module. It fails, rather than silently testing the unchanged policy,
// when authz.rego no longer has what the edit relies on.
package policyvariant

import (
	"errors"
	"strings"
)

// allowedRule is authz.rego's last reason rule: the one a variant narrows.
const allowedRule = "} else := \"allowed\" if {\n\tcount(matched) > 0\n}"

// RequireAlso returns authz (authz.rego's text) with condition added to
// its allowed rule and rules appended: an allow now needs the condition
// too.
func RequireAlso(authz, condition, rules string) (string, error) {
	if !strings.Contains(authz, allowedRule) {
		return "", errors.New("authz.rego no longer has the allowed rule a variant extends")
	}
	narrowed := strings.TrimSuffix(allowedRule, "}") + "\t" + condition + "\n}"
	return strings.Replace(authz, allowedRule, narrowed, 1) + rules, nil
}

// Owner is the ABAC variant: a resource with an owner is allowed only to
// its owner, on top of the scope check.
func Owner(authz string) (string, error) {
	return RequireAlso(authz, "owner_ok", `
# ABAC variant: a resource with an owner is only for its owner.
default owner_ok := true

owner_ok := input.resource.owner == input.subject if input.resource.owner
`)
}

// EditAuthz applies edit to the authz.rego module among modules (by file
// name), in place.
func EditAuthz(modules map[string]string, edit func(string) (string, error)) error {
	for name, text := range modules {
		if strings.HasSuffix(name, "/authz.rego") || name == "authz.rego" {
			out, err := edit(text)
			if err != nil {
				return err
			}
			modules[name] = out
			return nil
		}
	}
	return errors.New("no authz.rego among the modules")
}
