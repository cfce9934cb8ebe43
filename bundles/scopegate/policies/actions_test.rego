# Consistency checks on the action table, so a catalog edit that removes or
# renames a scope a policy uses fails here, not at request time.
package scopegate.actions_test

import data.scopegate.actions
import data.scopegate.catalog

test_named_actions_use_known_scopes if {
	every _, a in actions.named {
		count(a.any_of) > 0
		every s in a.any_of {
			catalog.scopes[s]
		}
	}
}

test_named_actions_do_not_shadow_scopes if {
	every name, _ in actions.named {
		not catalog.scopes[name]
	}
}

test_routes_name_known_actions if {
	every r in actions.routes {
		known_action(r.action)
	}
}

known_action(a) if catalog.scopes[a]

known_action(a) if actions.named[a]

test_routes_are_well_formed if {
	every r in actions.routes {
		r.method == upper(r.method)
		startswith(r.path, "/")
	}
}

# Two routes with the same method and the same shape would be ambiguous.
test_routes_are_unambiguous if {
	shapes := [shape(r) | some r in actions.routes]
	count(shapes) == count({s | some s in shapes})
}

shape(r) := sprintf("%s %s", [r.method, concat("/", [normalise(seg) | some seg in split(r.path, "/")])])

normalise(seg) := "{}" if startswith(seg, "{")

else := seg
