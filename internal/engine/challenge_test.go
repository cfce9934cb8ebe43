package engine

import "testing"

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
