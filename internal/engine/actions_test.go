package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/source"
)

func TestActions(t *testing.T) {
	e := newEngine(t, repoSource(t))
	v, err := e.Actions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Named) < 10 || len(v.Routes) < 10 {
		t.Fatalf("named %d routes %d", len(v.Named), len(v.Routes))
	}
	if !slices.IsSortedFunc(v.Named, func(a, b engine.NamedAction) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("named actions not sorted")
	}
	var launch *engine.NamedAction
	for i := range v.Named {
		if v.Named[i].Name == "project.launch" {
			launch = &v.Named[i]
		}
	}
	if launch == nil {
		t.Fatal("project.launch missing")
	}
	if !slices.Equal(launch.AnyOf, []string{"project:launch"}) || !slices.Equal(launch.ConferredBy, []string{"project:launch", "project:manage"}) ||
		len(launch.Routes) != 1 || launch.Routes[0].Path != "/projects/{id}/launch" || launch.Description == "" {
		t.Errorf("project.launch = %+v", launch)
	}

	for _, tc := range []struct {
		scope            string
		neededBy, allows []string
		route            string // one route expected among the scope's routes
	}{
		{"project:launch", []string{"project.launch"}, []string{"project.launch"}, "POST /projects/{id}/launch"},
		{"project:manage", []string{"project.delete"}, []string{"project.delete", "project.edit", "project.launch", "project.list", "project.quote"}, "DELETE /projects/{id}"},
		{"user:email", []string{"profile.email.read"}, []string{"profile.email.read"}, "GET /me/email"},
		{"user:write", []string{"profile.update"}, []string{"profile.read", "profile.update"}, "PATCH /me"},
		{"transaction:read", []string{"transaction.list"}, []string{"transaction.list"}, "GET /transactions"},
	} {
		got := v.ForScope(tc.scope)
		var routes []string
		for _, r := range got.Routes {
			routes = append(routes, r.Method+" "+r.Path)
		}
		if !slices.Equal(got.NeededBy, tc.neededBy) || !slices.Equal(got.Allows, tc.allows) || !slices.Contains(routes, tc.route) {
			t.Errorf("%s: needed by %v allows %v routes %v", tc.scope, got.NeededBy, got.Allows, routes)
		}
	}

	again, err := e.Actions(context.Background())
	if err != nil || again != v {
		t.Errorf("not cached per engine: %p %p %v", v, again, err)
	}
}

func TestActionsWithoutActionsPackage(t *testing.T) {
	src := repoSource(t)
	only := &source.Source{Modules: map[string]string{"p.rego": "package scopegate.authz\n\ndecision := {}\n"}, Data: src.Data, Revision: "x"}
	e := newEngine(t, only)
	v, err := e.Actions(context.Background())
	if err != nil || len(v.Named) != 0 || len(v.Routes) != 0 {
		t.Fatalf("%+v %v", v, err)
	}
	if got := v.ForScope("user:read"); len(got.NeededBy)+len(got.Allows)+len(got.Routes) != 0 {
		t.Errorf("%+v", got)
	}
}

func TestActionsNilEngine(t *testing.T) {
	var e *engine.Engine
	if _, err := e.Actions(context.Background()); err == nil {
		t.Fatal("want an error")
	}
}
