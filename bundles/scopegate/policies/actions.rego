# Actions and routes: what each API call needs.
#
# Every catalog scope is already an action of the same name: action
# "user:email" asks "does this token confer user:email?". The rules below add
# API-level names and map HTTP routes onto actions. Edit them here; the Rego
# tests in actions_test.rego check every entry refers to a known scope.
package scopegate.actions

# Named actions. any_of: the token must confer at least one of these scopes
# (directly or through an including scope such as project:manage).
named := {
	"catalog.read": {"any_of": ["public"], "description": "Read languages, options, pricing and expertises"},
	"profile.read": {"any_of": ["user:read"], "description": "Read the user's profile"},
	"profile.update": {"any_of": ["user:write"], "description": "Update the user's profile"},
	"profile.email.read": {"any_of": ["user:email"], "description": "Read the user's private email address"},
	"glossary.list": {"any_of": ["glossary:read"], "description": "List glossaries"},
	"glossary.edit": {"any_of": ["glossary:write"], "description": "Create or change a glossary"},
	"glossary.delete": {"any_of": ["glossary:manage"], "description": "Delete a glossary"},
	"project.list": {"any_of": ["project:read"], "description": "List projects, documents and templates"},
	"project.edit": {"any_of": ["project:write"], "description": "Create or change a project or its documents"},
	"project.delete": {"any_of": ["project:manage"], "description": "Delete a project"},
	"project.quote": {"any_of": ["project:quote"], "description": "Ask for a quotation"},
	"project.launch": {"any_of": ["project:launch"], "description": "Launch a project and debit the client's account"},
	"discussion.read": {"any_of": ["discussion:read"], "description": "Read team discussions"},
	"discussion.post": {"any_of": ["discussion:write"], "description": "Post to a team discussion"},
	"transaction.list": {"any_of": ["transaction:read"], "description": "List financial transactions"},
	"preferred_author.list": {"any_of": ["preferred_author:read"], "description": "List preferred authors"},
	"preferred_author.edit": {"any_of": ["preferred_author:write"], "description": "Add or remove preferred authors"},
}

# HTTP routes. {name} matches exactly one non-empty path segment. When
# several routes match, the one with the most literal segments wins.
routes := [
	{"method": "GET", "path": "/languages", "action": "catalog.read"},
	{"method": "GET", "path": "/expertises", "action": "catalog.read"},
	{"method": "GET", "path": "/pricing", "action": "catalog.read"},
	{"method": "GET", "path": "/me", "action": "profile.read"},
	{"method": "PUT", "path": "/me", "action": "profile.update"},
	{"method": "PATCH", "path": "/me", "action": "profile.update"},
	{"method": "GET", "path": "/me/email", "action": "profile.email.read"},
	{"method": "GET", "path": "/glossaries", "action": "glossary.list"},
	{"method": "GET", "path": "/glossaries/{id}", "action": "glossary.list"},
	{"method": "POST", "path": "/glossaries", "action": "glossary.edit"},
	{"method": "PUT", "path": "/glossaries/{id}", "action": "glossary.edit"},
	{"method": "DELETE", "path": "/glossaries/{id}", "action": "glossary.delete"},
	{"method": "GET", "path": "/projects", "action": "project.list"},
	{"method": "GET", "path": "/projects/{id}", "action": "project.list"},
	{"method": "GET", "path": "/projects/{id}/documents", "action": "project.list"},
	{"method": "GET", "path": "/projects/templates", "action": "project.list"},
	{"method": "POST", "path": "/projects", "action": "project.edit"},
	{"method": "PUT", "path": "/projects/{id}", "action": "project.edit"},
	{"method": "POST", "path": "/projects/{id}/documents", "action": "project.edit"},
	{"method": "DELETE", "path": "/projects/{id}", "action": "project.delete"},
	{"method": "POST", "path": "/projects/{id}/quote", "action": "project.quote"},
	{"method": "POST", "path": "/projects/{id}/launch", "action": "project.launch"},
	{"method": "GET", "path": "/discussions", "action": "discussion.read"},
	{"method": "GET", "path": "/discussions/{id}", "action": "discussion.read"},
	{"method": "POST", "path": "/discussions/{id}/messages", "action": "discussion.post"},
	{"method": "GET", "path": "/transactions", "action": "transaction.list"},
	{"method": "GET", "path": "/preferred_authors", "action": "preferred_author.list"},
	{"method": "POST", "path": "/preferred_authors", "action": "preferred_author.edit"},
	{"method": "DELETE", "path": "/preferred_authors/{id}", "action": "preferred_author.edit"},
]
