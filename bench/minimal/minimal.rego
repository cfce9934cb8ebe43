# The least an OPA server can do for a scope check: expand the granted
# scopes through the catalog's precomputed closure and look for one of the
# scopes the action needs (which the benchmark resolves for it, route and
# named action included). bench/ compares scopegate with it; it is not a
# policy to deploy.
package scopegate.minimal

import data.scopegate.catalog

granted := {i | some s in input.granted_scopes; some i in catalog.scopes[s].implies}

default allow := false

allow if {
	some s in input.any_of
	s in granted
}

decision := {"allow": allow, "missing": [s | some s in input.any_of; not s in granted]}
