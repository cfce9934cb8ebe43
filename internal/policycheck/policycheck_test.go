package policycheck_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/policycheck"
	"github.com/scopegate/scopegate/internal/source"
)

// lineOf is the 1-based line of the first line of file containing s.
func lineOf(t *testing.T, file, s string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%s does not contain %q", file, s)
	return 0
}

// editedCatalog writes a copy of the repo's scopes.yaml with edits applied.
func editedCatalog(t *testing.T, edits ...string) string {
	t.Helper()
	b, err := os.ReadFile("../../scopes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for i := 0; i < len(edits); i += 2 {
		if !strings.Contains(text, edits[i]) {
			t.Fatalf("scopes.yaml lacks %q", edits[i])
		}
		text = strings.ReplaceAll(text, edits[i], edits[i+1])
	}
	p := filepath.Join(t.TempDir(), "scopes.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRepoPoliciesMatchTheCatalog(t *testing.T) {
	for _, dir := range []string{"../..", "../../examples/marketplace"} {
		src, err := source.FromFiles(dir+"/scopes.yaml", dir+"/policies")
		if err != nil {
			t.Fatal(err)
		}
		problems, err := policycheck.Check(context.Background(), src)
		if err != nil || len(problems) != 0 {
			t.Fatalf("%s: %v\n%v", dir, err, problems)
		}
	}
}

func TestRemovedOrRenamedScope(t *testing.T) {
	actions, err := filepath.Abs("../../policies/actions.rego")
	if err != nil {
		t.Fatal(err)
	}
	// Rename user:email to user:mail; drop project:launch entirely.
	cat := editedCatalog(t,
		"user:email", "user:mail",
		"project:read, project:write, project:launch, project:quote", "project:read, project:write, project:quote",
		"  - name: project:launch\n    description: Launch projects and debit the client's account.\n    sensitive: true\n", "")
	src, err := source.FromFiles(cat, filepath.Dir(actions))
	if err != nil {
		t.Fatal(err)
	}
	problems, err := policycheck.Check(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf(`%s:%d: named action "profile.email.read" requires scope "user:email", which the catalog does not define (did you mean "user:mail"?)`,
			actions, lineOf(t, actions, `"profile.email.read": {"any_of": ["user:email"]`)),
		fmt.Sprintf(`%s:%d: named action "project.launch" requires scope "project:launch", which the catalog does not define`,
			actions, lineOf(t, actions, `"project.launch": {"any_of": ["project:launch"]`)),
	}
	if got := problems.Error(); got != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestRoutesAndRuleForms(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	src.Modules = map[string]string{
		"a.rego": `package scopegate.actions

named["report.read"] := {"any_of": ["project:read"]}

named["report.export"] := {
	"any_of": ["project:read", "project:wrte"],
}

named["report.none"] := {"any_of": []}

routes := [
	{"method": "GET", "path": "/reports", "action": "report.read"},
	{"method": "GET", "path": "/reports/{id}", "action": "user:read"},
	{"method": "POST", "path": "/reports",
	 "action": "report.write"},
	{"method": "GET", "path": "/me/email", "action": "user:emial"},
]
`,
		"b.rego": "package scopegate.authz\n\ndecision := {}\n",
	}
	problems, err := policycheck.Check(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`a.rego:6: named action "report.export" requires scope "project:wrte", which the catalog does not define (did you mean "project:write"?)`,
		`a.rego:9: named action "report.none" has no any_of list of scopes`,
		`a.rego:14: route POST /reports names action "report.write", which is neither a catalog scope nor a named action`,
		`a.rego:16: route GET /me/email names action "user:emial", which is neither a catalog scope nor a named action (did you mean scope "user:email"?)`,
	}, "\n")
	if got := problems.Error(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestNoActionsPackageIsFine(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	src.Modules = map[string]string{"b.rego": "package scopegate.authz\n\ndecision := {}\n"}
	if problems, err := policycheck.Check(context.Background(), src); err != nil || len(problems) != 0 {
		t.Fatalf("%v %v", problems, err)
	}
}

func TestBrokenPolicyIsAnError(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	src.Modules = map[string]string{"a.rego": "package scopegate.actions\n\nnamed := {\n"}
	if _, err := policycheck.Check(context.Background(), src); err == nil || !strings.Contains(err.Error(), "a.rego:4") {
		t.Fatalf("err = %v", err)
	}
}
