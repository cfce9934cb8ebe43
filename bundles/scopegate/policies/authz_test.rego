# Unit tests for the decision, against the generated reference catalog.
# Run with `go test ./...` (OPA's tester), `opa test policies bundles/scopegate/data.json` or `opa test -b bundles/scopegate`.
package scopegate.authz_test

import data.scopegate.authz

decide(scopes, action) := d if {
	d := authz.decision with input as {"granted_scopes": scopes, "action": action}
}

route(scopes, method, path) := d if {
	d := authz.decision with input as {"granted_scopes": scopes, "method": method, "path": path}
}

test_manage_allows_launch if {
	d := decide(["project:manage"], "project:launch")
	d.allow
	d.reason == "allowed"
	d.matched == ["project:manage"]
	d.required_any_of == ["project:launch", "project:manage"]
}

test_write_allows_read if {
	d := decide(["project:write"], "project:read")
	d.allow
	d.matched == ["project:write"]
	d.granted_effective == ["project:read", "project:write"]
}

test_write_does_not_allow_launch if {
	d := decide(["project:write"], "project:launch")
	not d.allow
	d.reason == "missing_scope"
	d.missing == ["project:launch"]
	d.narrowest == "project:launch"
	d.sensitive
	contains(d.remedy, "project:launch")
	d.explain == [
		"action project:launch requires one of [project:launch project:manage]",
		"token grants project:write (implies project:read): none of them",
	]
}

test_user_manage_reads_email if {
	d := decide(["user:manage"], "user:email")
	d.allow
	d.granted_effective == ["user:email", "user:manage", "user:read", "user:write"]
}

test_user_write_does_not_read_email if {
	d := decide(["user:write"], "profile.email.read")
	not d.allow
	d.missing == ["user:email"]
}

test_no_scopes_means_public if {
	d := decide([], "catalog.read")
	d.allow
	d.granted_effective == ["public"]
	"no scopes given: default scope public applies" in d.explain
}

test_no_scopes_denied_beyond_public if {
	d := decide([], "user:read")
	not d.allow
	d.reason == "no_scopes"
	d.missing == ["user:read"]
}

test_scope_string_form if {
	d := decide("user:read project:write", "project.list")
	d.allow
	d.granted_effective == ["project:read", "project:write", "user:read"]
}

# The raw input the server accepts, as opa eval gets it: scope (RFC 7662)
# instead of granted_scopes, in either form.
test_scope_field_as_in_introspection if {
	d := authz.decision with input as {"scope": "project:manage user:read", "action": "project:launch"}
	d.allow
	d.matched == ["project:manage"]
	l := authz.decision with input as {"scope": ["project:write"], "action": "project:launch"}
	not l.allow
	l.reason == "missing_scope"
}

test_missing_granted_scopes_acts_as_public if {
	d := authz.decision with input as {"action": "catalog.read"}
	d.allow
}

test_unknown_scope_denied_even_with_enough_scopes if {
	d := decide(["project:manage", "project:destroy"], "project:read")
	not d.allow
	d.reason == "unknown_scope"
	d.unknown_scopes == ["project:destroy"]
	contains(d.remedy, "project:destroy")
}

test_unknown_action if {
	d := decide(["project:manage"], "project:explode")
	not d.allow
	d.reason == "unknown_action"
}

test_route_launch if {
	d := route(["project:manage"], "POST", "/projects/42/launch")
	d.allow
	d.action == "project.launch"
	d.route == "POST /projects/{id}/launch"
	d.explain[0] == "route POST /projects/{id}/launch matches action project.launch"
}

test_route_method_is_case_insensitive if {
	route(["project:read"], "get", "/projects/7").allow
}

test_route_literal_beats_parameter if {
	d := route(["project:read"], "GET", "/projects/templates")
	d.route == "GET /projects/templates"
}

test_route_trailing_slash if {
	route(["user:read"], "GET", "/me/").allow
}

test_route_unknown if {
	d := route(["project:manage"], "POST", "/projects/42/explode")
	not d.allow
	d.reason == "unknown_action"
	d.explain[0] == "no route matches POST /projects/42/explode"
}

test_route_parameter_needs_a_segment if {
	not route(["project:manage"], "POST", "/projects//launch").allow
}

test_route_denied_names_narrowest if {
	d := route(["project:read"], "DELETE", "/projects/42")
	not d.allow
	d.missing == ["project:manage"]
	d.narrowest == "project:manage"
}

test_ambiguous_route_is_policy_error if {
	d := route(["project:manage"], "GET", "/x/1") with data.scopegate.actions.routes as [
		{"method": "GET", "path": "/x/{a}", "action": "project:read"},
		{"method": "GET", "path": "/x/{b}", "action": "project:write"},
	]
	not d.allow
	d.reason == "policy_error"
}

test_named_action_with_lost_scope_is_policy_error if {
	d := decide(["project:manage"], "gone") with data.scopegate.actions.named as {"gone": {"any_of": ["project:gone"]}}
	not d.allow
	d.reason == "policy_error"
}

test_allow_is_false_by_construction_on_error_paths if {
	every a in ["", "x", "project:explode"] {
		not decide(["project:manage"], a).allow
	}
}

# --- Requested vs granted ------------------------------------------------------

requested(granted, requested, action) := d if {
	d := authz.decision with input as {"granted_scopes": granted, "requested_scopes": requested, "action": action}
}

test_narrowed_by_user_when_a_requested_scope_would_allow if {
	d := requested(["project:write"], ["project:manage", "user:read"], "project:launch")
	not d.allow
	d.reason == "missing_scope"
	d.narrowed_by_user
	d.requested_not_granted == ["project:manage", "user:read"]
	"the app requested project:manage, which would allow project:launch, but the user granted less: the token lacks it" in d.explain
	startswith(d.remedy, "the user did not grant project:manage")
}

test_not_narrowed_when_the_app_never_asked if {
	d := requested(["project:write"], ["project:write"], "project:launch")
	not d.narrowed_by_user
	d.requested_not_granted == []
	"the app requested none of [project:launch project:manage]: it must ask for project:launch before the user can grant it" in d.explain
	startswith(d.remedy, "request scope project:launch")
}

test_implied_requested_scope_counts_as_granted if {
	d := requested(["project:write"], ["project:read"], "project:read")
	d.allow
	d.requested_not_granted == []
	not d.narrowed_by_user
}

test_allow_lists_declined_scopes_without_narrowing if {
	d := requested(["project:write"], "project:write user:email", "project:read")
	d.allow
	d.requested_not_granted == ["user:email"]
	not d.narrowed_by_user
	"requested but not granted: user:email" in d.explain
}

test_narrowed_with_no_scopes_granted if {
	d := requested([], ["user:read"], "profile.read")
	d.reason == "no_scopes"
	d.narrowed_by_user
}

test_without_requested_scopes_nothing_changes if {
	d := decide(["project:write"], "project:launch")
	d.requested_not_granted == []
	not d.narrowed_by_user
}

test_narrowing_is_only_for_missing_scopes if {
	not requested(["project:write"], ["project:manage"], "project:explode").narrowed_by_user
	not requested(["project:write", "project:nuke"], ["project:manage"], "project:launch").narrowed_by_user
}

test_requested_scopes_of_another_type_are_ignored if {
	d := requested(["project:write"], 42, "project:launch")
	d.requested_not_granted == []
	not d.narrowed_by_user
}

# With --token-issuer, the server verifies the caller's access token and
# passes every claim as input.token (the scopes it grants as
# granted_scopes). The reference policy decides on the scopes alone; a rule
# may also read a claim, e.g. in authz.rego's "allowed" branch:
#
#   input.token.acr == "urn:example:mfa"
test_token_claims_are_part_of_the_input if {
	d := authz.decision with input as {
		"granted_scopes": ["project:manage"], "action": "project:launch",
		"token": {"sub": "user-7", "acr": "urn:example:mfa", "scope": "project:manage"},
	}
	d.allow
	d.reason == "allowed"
}

# Foreign scopes (scopes.yaml: foreign): OpenID Connect's openid and profile
# confer nothing and are not unknown; a token with nothing else has no scopes.
test_foreign_scopes_confer_nothing if {
	d := decide(["openid", "profile", "user:read"], "user:read")
	d.allow
	d.foreign_scopes == ["openid", "profile"]
	d.unknown_scopes == []
	n := decide(["openid"], "user:read")
	not n.allow
	n.reason == "no_scopes"
	u := decide(["openid", "usr:read"], "user:read")
	u.reason == "unknown_scope"
	u.unknown_scopes == ["usr:read"]
}
