package engine

import (
	"reflect"
	"testing"
)

// TestChallenge: the RFC 6750 challenge of each kind of deny, quoted safely.
func TestChallenge(t *testing.T) {
	for _, tc := range []struct {
		d    Decision
		want string
	}{
		{Decision{Reason: ReasonAllowed, Allow: true}, ""},
		{Decision{Reason: ReasonMissingScope, Narrowest: "project:launch"}, `Bearer error="insufficient_scope", scope="project:launch"`},
		{Decision{Reason: ReasonNoScopes, Narrowest: "user:read"}, `Bearer error="insufficient_scope", scope="user:read"`},
		{Decision{Reason: ReasonUnknownAction}, `Bearer error="insufficient_scope"`},
		{Decision{Reason: ReasonInvalidToken, Explain: []string{`exp: "expired" \ é`}}, `Bearer error="invalid_token", error_description="exp: 'expired' / ?"`},
		{Decision{Reason: ReasonPolicyError}, "Bearer"},
	} {
		if got := challenge(&tc.d); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.d.Reason, got, tc.want)
		}
	}
}

// TestTextsCoverEveryTextField: Texts names every string and string-list
// field of Decision, so masking, the cache's charge and the log's bounds
// miss none.
func TestTextsCoverEveryTextField(t *testing.T) {
	var d Decision
	strs, lists := d.Texts()
	covered := map[any]bool{}
	for _, s := range strs {
		covered[s] = true
	}
	for _, l := range lists {
		covered[l] = true
	}
	v := reflect.ValueOf(&d).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Interface().(type) {
		case string, []string:
			if !covered[f.Addr().Interface()] {
				t.Errorf("Decision.%s is not in Texts", v.Type().Field(i).Name)
			}
		}
	}
}
