# Actions and routes of the marketplace's seller API: what each call needs.
#
# Every catalog scope is already an action of the same name. The entries
# below name the API's operations and map its routes onto them. Each
# workflow gets the narrowest scope that does the job, so a seller can hand
# each integration the least-permissive token:
#   license server      licenses:verify
#   delivery bot        files:download
#   catalog sync        products:write (+ files:upload)
#   payment listener    payment_webhooks:read (its endpoint is set up once, with manage)
#   helpdesk            support:write
#   accounting export   sales:read, payouts:read
package scopegate.actions

named := {
	"storefront.read": {"any_of": ["public"], "description": "Read published products, prices and seller profiles"},
	"product.list": {"any_of": ["products:read"], "description": "List the seller's products, drafts included"},
	"product.edit": {"any_of": ["products:write"], "description": "Create or change a product"},
	"product.publish": {"any_of": ["products:manage"], "description": "Publish or unpublish a product"},
	"product.delete": {"any_of": ["products:manage"], "description": "Delete a product"},
	"file.list": {"any_of": ["files:download", "files:upload"], "description": "List a product's files"},
	"file.download": {"any_of": ["files:download"], "description": "Download a product file"},
	"file.upload": {"any_of": ["files:upload"], "description": "Upload a product file or a new version"},
	"file.delete": {"any_of": ["files:manage"], "description": "Delete a product file"},
	"license.verify": {"any_of": ["licenses:verify"], "description": "Check a license key"},
	"license.list": {"any_of": ["licenses:read"], "description": "List license keys and their buyers"},
	"license.issue": {"any_of": ["licenses:issue"], "description": "Issue a license key"},
	"license.revoke": {"any_of": ["licenses:manage"], "description": "Revoke a license key"},
	"sale.list": {"any_of": ["sales:read"], "description": "List sales"},
	"sale.refund": {"any_of": ["sales:refund"], "description": "Refund a sale"},
	"webhook.list": {"any_of": ["payment_webhooks:read"], "description": "List payment webhook endpoints and deliveries"},
	"webhook.subscribe": {"any_of": ["payment_webhooks:manage"], "description": "Add or change a payment webhook endpoint"},
	"webhook.delete": {"any_of": ["payment_webhooks:manage"], "description": "Remove a payment webhook endpoint"},
	"payout.read": {"any_of": ["payouts:read"], "description": "Read the balance and payout history"},
	"payout.settings.update": {"any_of": ["payouts:manage"], "description": "Change the payout bank account or schedule"},
	"payout.request": {"any_of": ["payouts:manage"], "description": "Request a payout now"},
	"ticket.list": {"any_of": ["support:read"], "description": "Read support tickets"},
	"ticket.reply": {"any_of": ["support:write"], "description": "Reply to a support ticket"},
	"ticket.close": {"any_of": ["support:manage"], "description": "Close or assign a support ticket"},
}

# HTTP routes. {name} matches exactly one non-empty path segment. When
# several routes match, the one with the most literal segments wins.
routes := [
	{"method": "GET", "path": "/store/products", "action": "storefront.read"},
	{"method": "GET", "path": "/store/products/{id}", "action": "storefront.read"},
	{"method": "GET", "path": "/products", "action": "product.list"},
	{"method": "GET", "path": "/products/{id}", "action": "product.list"},
	{"method": "POST", "path": "/products", "action": "product.edit"},
	{"method": "PUT", "path": "/products/{id}", "action": "product.edit"},
	{"method": "POST", "path": "/products/{id}/publish", "action": "product.publish"},
	{"method": "DELETE", "path": "/products/{id}", "action": "product.delete"},
	{"method": "GET", "path": "/products/{id}/files", "action": "file.list"},
	{"method": "GET", "path": "/products/{id}/files/{file}", "action": "file.download"},
	{"method": "POST", "path": "/products/{id}/files", "action": "file.upload"},
	{"method": "DELETE", "path": "/products/{id}/files/{file}", "action": "file.delete"},
	{"method": "POST", "path": "/licenses/verify", "action": "license.verify"},
	{"method": "GET", "path": "/licenses", "action": "license.list"},
	{"method": "POST", "path": "/licenses", "action": "license.issue"},
	{"method": "DELETE", "path": "/licenses/{key}", "action": "license.revoke"},
	{"method": "GET", "path": "/sales", "action": "sale.list"},
	{"method": "GET", "path": "/sales/{id}", "action": "sale.list"},
	{"method": "POST", "path": "/sales/{id}/refund", "action": "sale.refund"},
	{"method": "GET", "path": "/webhooks", "action": "webhook.list"},
	{"method": "GET", "path": "/webhooks/{id}/deliveries", "action": "webhook.list"},
	{"method": "POST", "path": "/webhooks", "action": "webhook.subscribe"},
	{"method": "PUT", "path": "/webhooks/{id}", "action": "webhook.subscribe"},
	{"method": "DELETE", "path": "/webhooks/{id}", "action": "webhook.delete"},
	{"method": "GET", "path": "/payouts", "action": "payout.read"},
	{"method": "GET", "path": "/balance", "action": "payout.read"},
	{"method": "PUT", "path": "/payouts/settings", "action": "payout.settings.update"},
	{"method": "POST", "path": "/payouts", "action": "payout.request"},
	{"method": "GET", "path": "/tickets", "action": "ticket.list"},
	{"method": "GET", "path": "/tickets/{id}", "action": "ticket.list"},
	{"method": "POST", "path": "/tickets/{id}/replies", "action": "ticket.reply"},
	{"method": "POST", "path": "/tickets/{id}/close", "action": "ticket.close"},
]
