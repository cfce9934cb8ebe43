# Decisions for the marketplace's workflows, each with its least-permissive
# token. Run with `go test ./examples/marketplace/` or
# `scopegate test --catalog examples/marketplace/scopes.yaml --policies examples/marketplace/policies`.
package scopegate.marketplace_test

import data.scopegate.authz

route(scopes, method, path) := d if {
	d := authz.decision with input as {"granted_scopes": scopes, "method": method, "path": path}
}

decide(scopes, action) := d if {
	d := authz.decision with input as {"granted_scopes": scopes, "action": action}
}

test_storefront_needs_no_scopes if {
	d := route([], "GET", "/store/products/42")
	d.allow
	d.action == "storefront.read"
	d.granted_effective == ["public"]
}

test_license_server_verifies_but_cannot_list_buyers if {
	route(["licenses:verify"], "POST", "/licenses/verify").allow
	d := route(["licenses:verify"], "GET", "/licenses")
	not d.allow
	d.reason == "missing_scope"
	d.missing == ["licenses:read"]
	d.sensitive
	d.required_any_of == ["licenses:read", "licenses:manage"]
}

test_issuing_includes_verifying if {
	route(["licenses:issue"], "POST", "/licenses/verify").allow
	not route(["licenses:issue"], "DELETE", "/licenses/K-1").allow
}

test_license_manage_confers_every_license_scope if {
	d := decide(["licenses:manage"], "license.revoke")
	d.allow
	d.granted_effective == ["licenses:issue", "licenses:manage", "licenses:read", "licenses:verify"]
}

test_delivery_bot_downloads_but_cannot_upload if {
	d := route(["files:download"], "GET", "/products/7/files/3")
	d.allow
	d.sensitive
	d.route == "GET /products/{id}/files/{file}"
	not route(["files:download"], "POST", "/products/7/files").allow
}

test_file_listing_takes_either_file_scope if {
	route(["files:upload"], "GET", "/products/7/files").allow
	route(["files:download"], "GET", "/products/7/files").allow
	d := route(["products:manage"], "GET", "/products/7/files")
	not d.allow
	d.missing == ["files:download", "files:upload"]
}

test_catalog_sync_edits_but_does_not_publish if {
	route(["products:write"], "PUT", "/products/7").allow
	route(["products:write"], "GET", "/products").allow
	d := route(["products:write"], "POST", "/products/7/publish")
	not d.allow
	d.narrowest == "products:manage"
}

test_payment_listener_reads_deliveries_only if {
	route(["payment_webhooks:read"], "GET", "/webhooks/9/deliveries").allow
	d := route(["payment_webhooks:read"], "POST", "/webhooks")
	not d.allow
	d.sensitive
	d.missing == ["payment_webhooks:manage"]
}

test_refunds_are_sensitive_and_separate_from_reading_sales if {
	d := route(["sales:read"], "POST", "/sales/1/refund")
	not d.allow
	d.sensitive
	d.narrowest == "sales:refund"
	route(["sales:manage"], "POST", "/sales/1/refund").allow
}

test_payout_settings_need_manage if {
	route(["payouts:read"], "GET", "/balance").allow
	d := route(["payouts:read"], "PUT", "/payouts/settings")
	not d.allow
	d.sensitive
	route(["payouts:manage"], "PUT", "/payouts/settings").allow
}

test_helpdesk_replies_but_does_not_close if {
	route(["support:write"], "POST", "/tickets/3/replies").allow
	route(["support:write"], "GET", "/tickets/3").allow
	not route(["support:write"], "POST", "/tickets/3/close").allow
}

test_user_granted_less_than_requested if {
	d := authz.decision with input as {
		"granted_scopes": "sales:read",
		"requested_scopes": "sales:read payouts:read",
		"method": "GET", "path": "/payouts",
	}
	not d.allow
	d.narrowed_by_user
	d.requested_not_granted == ["payouts:read"]
	startswith(d.remedy, "the user did not grant payouts:read")
}

# A scope of the other catalog means nothing here.
test_reference_catalog_scope_is_unknown if {
	d := decide(["project:manage"], "product.list")
	not d.allow
	d.reason == "unknown_scope"
	d.unknown_scopes == ["project:manage"]
}

test_unknown_route if {
	d := route(["products:manage"], "GET", "/projects")
	d.reason == "unknown_action"
}
