package engine

import "strings"

// challenge is the RFC 6750 section 3.1 WWW-Authenticate challenge for a
// deny, "" for an allow. missing_scope and no_scopes name the narrowest
// scope that would allow the request (which only a catalog-aware decision
// point can fill in); invalid_token says why the token was refused.
func challenge(d *Decision) string {
	switch d.Reason {
	case ReasonAllowed:
		return ""
	case ReasonMissingScope, ReasonNoScopes:
		if d.Narrowest != "" {
			return `Bearer error="insufficient_scope", scope="` + quoted(d.Narrowest) + `"`
		}
		return `Bearer error="insufficient_scope"`
	case ReasonUnknownScope, ReasonUnknownAction:
		return `Bearer error="insufficient_scope"`
	case ReasonInvalidToken:
		why := "the access token was refused"
		if len(d.Explain) > 0 {
			why = d.Explain[0]
		}
		return `Bearer error="invalid_token", error_description="` + quoted(why) + `"`
	}
	// policy_error, invalid_input, log_unavailable: not the token's fault.
	return "Bearer"
}

// quoted makes s safe inside an RFC 6750 quoted string: its characters are
// %x20-21 / %x23-5B / %x5D-7E, so '"' and '\' become ' and anything
// outside printable ASCII becomes '?'.
func quoted(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}
