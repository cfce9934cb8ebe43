package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/scopegate/scopegate/internal/policyvariant"
)

// The realistic workload: what a gateway forwards. Routes with a fresh
// resource id every time, 64 distinct token scope sets, named actions and
// scope actions, about half denied. The ABAC variant adds a subject and a
// resource owner, for a policy that lets only the owner touch a resource.

// routeTemplates are routes of policies/actions.rego with a {id} segment,
// and the actions; scopes come from the catalog.
var routeTemplates = []string{
	"GET /projects/{id}", "PUT /projects/{id}", "DELETE /projects/{id}", "POST /projects/{id}/launch",
	"POST /projects/{id}/quote", "GET /projects/{id}/documents", "GET /glossaries/{id}", "PUT /glossaries/{id}",
	"DELETE /glossaries/{id}", "GET /discussions/{id}", "POST /discussions/{id}/messages", "DELETE /preferred_authors/{id}",
}

var namedActions = []string{
	"catalog.read", "profile.read", "profile.update", "profile.email.read", "glossary.list", "glossary.edit",
	"project.list", "project.edit", "project.quote", "project.launch", "discussion.read", "transaction.list",
}

// catalogScopes lists the scopes of the built bundle's catalog.
func catalogScopes() ([]string, error) {
	raw, err := os.ReadFile("bundles/scopegate/data.json")
	if err != nil {
		return nil, err
	}
	var d struct {
		Scopegate struct {
			Catalog struct {
				Scopes map[string]any `json:"scopes"`
			} `json:"catalog"`
		} `json:"scopegate"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	var out []string
	for s := range d.Scopegate.Catalog.Scopes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// diverseBodies makes n distinct /v1/decide bodies (seeded: the same every
// run). abac adds subject and resource.owner (the owner is the subject for
// about half of them).
func diverseBodies(n int, abac bool) ([][]byte, error) {
	scopes, err := catalogScopes()
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(1, 2))
	sets := make([][]string, 64)
	for i := range sets {
		k := 2 + r.IntN(4)
		for range k {
			sets[i] = append(sets[i], scopes[r.IntN(len(scopes))])
		}
		slices.Sort(sets[i])
		sets[i] = slices.Compact(sets[i])
	}
	out := make([][]byte, n)
	for i := range out {
		req := map[string]any{"granted_scopes": sets[r.IntN(len(sets))]}
		id := fmt.Sprintf("%d", 100000+i)
		switch i % 4 {
		case 0, 1:
			method, path, _ := strings.Cut(routeTemplates[r.IntN(len(routeTemplates))], " ")
			req["method"], req["path"] = method, strings.ReplaceAll(path, "{id}", id)
		case 2:
			req["action"] = namedActions[r.IntN(len(namedActions))]
		default:
			req["action"] = scopes[r.IntN(len(scopes))]
		}
		if abac {
			subject := fmt.Sprintf("user-%d", r.IntN(8))
			owner := subject
			if r.IntN(2) == 0 {
				owner = fmt.Sprintf("user-%d", r.IntN(8))
			}
			req["subject"] = subject
			req["resource"] = map[string]any{"type": "project", "id": id, "owner": owner}
		}
		if out[i], err = json.Marshal(req); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// abacPolicies writes policies/ with an owner rule into dir: a resource
// with an owner is allowed only to its owner, on top of the scope check.
func abacPolicies(dir string) (string, error) {
	out := filepath.Join(dir, "abac-policies")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	files, err := filepath.Glob("policies/*.rego")
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.rego") {
			continue // the tests pin the policy without the owner rule
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		if filepath.Base(f) == "authz.rego" {
			abac, err := policyvariant.Owner(string(b))
			if err != nil {
				return "", fmt.Errorf("%s: %w", f, err)
			}
			b = []byte(abac)
		}
		if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), b, 0o644); err != nil {
			return "", err
		}
	}
	return out, nil
}
