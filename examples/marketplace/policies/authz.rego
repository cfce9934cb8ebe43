# The decision: does the token's granted scopes allow the action, and why.
#
# Input (scopegate's server normalises it; `opa eval` callers send it as is):
#   granted_scopes: ["user:read", "project:write"]  (or one space-separated string;
#                   or named scope, as in RFC 7662 token introspection)
#   action: "project:launch"                         (or method + path of a route)
#   method: "POST", path: "/projects/42/launch"
#   requested_scopes: ["project:manage"]              (optional: what the app asked for)
#
# data.scopegate.catalog is generated from scopes.yaml (scopegate gen):
# scopes[name].implies is the transitive closure, scopes[name].satisfied_by
# the scopes conferring name, narrowest first.
#
# Fail closed: anything this file cannot resolve is a deny with a reason.
package scopegate.authz

# Imports, not `catalog := data.scopegate.catalog`: an alias reads only the
# entries a rule touches instead of copying the whole catalog per decision.
import data.scopegate.actions
import data.scopegate.catalog

# --- The token ---------------------------------------------------------------

# The token's scopes are granted_scopes or, as RFC 7662 introspection names
# them, scope: the server accepts either (never both), and so does this
# policy, so that opa eval on the raw input decides as the server does.
granted_field := input.granted_scopes if {
	input.granted_scopes != null
} else := input.scope

granted := {s | some s in granted_field} if {
	is_array(granted_field)
} else := {s | some s in split(granted_field, " "); s != ""} if {
	is_string(granted_field)
} else := set()

# Foreign scopes: a token may carry scopes this catalog does not govern
# (OpenID Connect's openid, another API's); the catalog declares them. They
# confer nothing and are not unknown.
is_foreign(s) if s in catalog.foreign.names

is_foreign(s) if {
	some prefix in catalog.foreign.prefixes
	startswith(s, prefix)
}

foreign_scopes := {s | some s in granted; not catalog.scopes[s]; is_foreign(s)}

governed := granted - foreign_scopes

# RFC 6749 3.3: a token that names no scope gets the catalog's default scope.
no_scopes if count(governed) == 0

token_scopes := governed if not no_scopes

token_scopes := {catalog.default_scope} if no_scopes

unknown_scopes := {s | some s in token_scopes; not catalog.scopes[s]}

effective := {i | some s in token_scopes; some i in catalog.scopes[s].implies}

# --- The action --------------------------------------------------------------

# (A helper rule, because `not is_string(input.action)` is undefined rather
# than true when input.action is absent.)
action_given if is_string(input.action)

action := input.action if action_given

action := route_action if not action_given

# Route matching runs only when no action is given.
method := upper(input.method) if not action_given

path_segments := split(trim(input.path, "/"), "/") if not action_given

matching_routes := [r |
	some r in actions.routes
	r.method == method
	pattern := split(trim(r.path, "/"), "/")
	count(pattern) == count(path_segments)
	every i, seg in pattern {
		segment_matches(seg, path_segments[i])
	}
] if not action_given

segment_matches(pattern, seg) if {
	startswith(pattern, "{")
	endswith(pattern, "}")
	seg != ""
}

segment_matches(pattern, seg) if pattern == seg

# Specificity: literal segments count, so /projects/templates beats /projects/{id}.
literal_segments(r) := count([seg | some seg in split(trim(r.path, "/"), "/"); not startswith(seg, "{")])

best_specificity := max({literal_segments(r) | some r in matching_routes})

best_routes := {r | some r in matching_routes; literal_segments(r) == best_specificity}

route := r if {
	count(best_routes) == 1
	some r in best_routes
}

route_action := route.action

ambiguous_route if count({r.action | some r in best_routes}) > 1

# --- What the action needs ----------------------------------------------------

requirement := {"any_of": [action]} if catalog.scopes[action]

requirement := r if {
	not catalog.scopes[action]
	r := actions.named[action]
}

# A named action that points at a scope the catalog lost is a policy bug.
requirement_unknown_scopes := {s | some s in requirement.any_of; not catalog.scopes[s]}

# Every scope that satisfies the action, narrowest first, without repeats.
# The catalog precomputes satisfied_by, so the usual one-scope case is a lookup.
required_any_of := catalog.scopes[requirement.any_of[0]].satisfied_by if {
	count(requirement.any_of) == 1
} else := unique_in_order([x | some s in requirement.any_of; some x in catalog.scopes[s].satisfied_by])

unique_in_order(xs) := [x | some i, x in xs; not x in array.slice(xs, 0, i)]

matched := {s | some s in required_any_of; s in token_scopes}

# --- What the app asked for ----------------------------------------------------
#
# The user may grant fewer scopes than the app requested, or narrow a token
# later. When the app says what it requested, the decision lists what the
# token lacks and whether that is why the action is denied, so the app can
# degrade the feature or send the user through consent again.

# Without requested_scopes none of this is evaluated (the usual case).
requested_given if input.requested_scopes

requested := {s | some s in input.requested_scopes} if {
	is_array(input.requested_scopes)
} else := {s | some s in split(input.requested_scopes, " "); s != ""} if {
	is_string(input.requested_scopes)
} else := set()

# A requested scope is granted when the token confers it, directly or
# through an including scope (requested project:read, granted project:write).
default requested_not_granted := set()

requested_not_granted := {s | some s in requested; not s in effective; not s in token_scopes} if requested_given

# Requested scopes the token lacks that would have allowed the action.
requested_would_allow := {s | some s in requested_not_granted; s in required_any_of}

default narrowed_by_user := false

narrowed_by_user if {
	requested_given
	reason in {"missing_scope", "no_scopes"}
	count(requested_would_allow) > 0
}

# --- The decision --------------------------------------------------------------

reason := "unknown_scope" if {
	count(unknown_scopes) > 0
} else := "policy_error" if {
	ambiguous_route
} else := "unknown_action" if {
	not requirement
} else := "policy_error" if {
	count(requirement_unknown_scopes) > 0
} else := "policy_error" if {
	count(required_any_of) == 0
} else := "allowed" if {
	count(matched) > 0
} else := "no_scopes" if {
	no_scopes
} else := "missing_scope"

allow := reason == "allowed"

default missing := []

missing := sort(requirement.any_of) if reason in {"missing_scope", "no_scopes"}

default narrowest := ""

narrowest := required_any_of[0]

default sensitive := false

sensitive if {
	some s in requirement.any_of
	catalog.scopes[s].sensitive
}

default action_name := ""

action_name := action

default route_name := ""

route_name := sprintf("%s %s", [route.method, route.path])

decision := {
	"allow": allow,
	"reason": reason,
	"action": action_name,
	"route": route_name,
	"required_any_of": required_any_of_or_empty,
	"granted_effective": sort(effective),
	"matched": sort(matched),
	"missing": missing,
	"narrowest": narrowest,
	"unknown_scopes": sort(unknown_scopes),
	"foreign_scopes": sort(foreign_scopes),
	"sensitive": sensitive,
	"explain": explain,
	"remedy": remedy,
	"requested_not_granted": sort(requested_not_granted),
	"narrowed_by_user": narrowed_by_user,
}

default required_any_of_or_empty := []

required_any_of_or_empty := required_any_of

# --- Explanation ---------------------------------------------------------------

explain := array.concat(array.concat(array.concat(explain_action, explain_requirement), explain_token), explain_requested)

default explain_action := []

explain_action := [sprintf("route %s matches action %s", [route_name, route_action])] if route_action

explain_action := [sprintf("no route matches %s %s", [upper(input.method), input.path])] if {
	not action_given
	count(matching_routes) == 0
}

explain_action := [sprintf("route %s %s is ambiguous: %s", [upper(input.method), input.path, concat(", ", sort({sprintf("%s %s -> %s", [r.method, r.path, r.action]) | some r in best_routes}))])] if ambiguous_route

default explain_requirement := []

explain_requirement := [sprintf("action %s is neither a catalog scope nor a named action", [action])] if {
	action
	not requirement
}

explain_requirement := [sprintf("action %s requires one of [%s]", [action, concat(" ", required_any_of)])] if {
	count(required_any_of) > 0
	count(requirement_unknown_scopes) == 0
}

explain_requirement := [sprintf("action %s requires scopes the catalog lacks: %s", [action, concat(", ", sort(requirement_unknown_scopes))])] if count(requirement_unknown_scopes) > 0

explain_token := array.concat(explain_default, [token_line])

default explain_default := []

explain_default := [sprintf("no scopes given: default scope %s applies", [catalog.default_scope])] if no_scopes

token_line := sprintf("token names scopes the catalog lacks: %s", [concat(", ", sort(unknown_scopes))]) if {
	count(unknown_scopes) > 0
} else := sprintf("token grants %s: %s", [grants_text, match_text])

grants_text := concat(", ", [describe_grant(s) | some s in sort(token_scopes)])

describe_grant(s) := sprintf("%s (implies %s)", [s, concat(", ", [i | some i in catalog.scopes[s].implies; i != s])]) if {
	count(catalog.scopes[s].implies) > 1
} else := s

match_text := concat(", ", [sprintf("%s confers %s", [s, action]) | some s in sort(matched)]) if {
	count(matched) > 0
} else := "none of them"

default explain_requested := []

explain_requested := array.concat(explain_not_granted, explain_not_requested) if requested_given

default explain_not_granted := []

explain_not_granted := [sprintf("the app requested %s, which would allow %s, but the user granted less: the token lacks it", [concat(", ", sort(requested_would_allow)), action])] if {
	narrowed_by_user
}

explain_not_granted := [sprintf("requested but not granted: %s", [concat(", ", sort(requested_not_granted))])] if {
	not narrowed_by_user
	count(requested_not_granted) > 0
}

default explain_not_requested := []

explain_not_requested := [sprintf("the app requested none of [%s]: it must ask for %s before the user can grant it", [concat(" ", required_any_of), narrowest])] if {
	reason in {"missing_scope", "no_scopes"}
	count(requested) > 0
	count(requested_would_allow) == 0
}

default remedy := ""

remedy := sprintf("request scope %s (narrowest) and send the user through consent again", [narrowest]) if {
	reason in {"missing_scope", "no_scopes"}
	not narrowed_by_user
}

remedy := sprintf("the user did not grant %s: degrade this feature, or send the user through consent again for %s, the narrowest scope that allows it (they may decline again)", [concat(", ", sort(requested_would_allow)), narrowest]) if {
	narrowed_by_user
}

remedy := sprintf("remove %s from the token, or add it to the catalog (scopes.yaml)", [concat(", ", sort(unknown_scopes))]) if {
	reason == "unknown_scope"
}

remedy := "name a catalog scope or a named action (policies/actions.rego), or add a route for this method and path" if {
	reason == "unknown_action"
}

remedy := "fix the policy: see explain; decisions fail closed until then" if {
	reason == "policy_error"
}
