package engine

import (
	"strings"

	"github.com/scopegate/scopegate/internal/redact"
)

// withoutJWTs returns d with every JWT it echoes (a token sent as a scope
// or an action comes back in unknown_scopes, action, explain and remedy)
// replaced by redact.Mask: the answer and its decision-log record share
// these bytes, and a secret must never reach disk. Slices are copied only
// when something in them changes.
func (d Decision) withoutJWTs() Decision {
	str := func(s *string) {
		if strings.Contains(*s, "eyJ") {
			*s, _ = redact.MaskJWTs(*s)
		}
	}
	list := func(l *[]string) {
		copied := false
		for i, s := range *l {
			if !strings.Contains(s, "eyJ") {
				continue
			}
			m, ok := redact.MaskJWTs(s)
			if !ok {
				continue
			}
			if !copied {
				*l = append([]string(nil), *l...)
				copied = true
			}
			(*l)[i] = m
		}
	}
	for _, s := range []*string{&d.Reason, &d.Action, &d.Route, &d.Narrowest, &d.Remedy} {
		str(s)
	}
	for _, l := range []*[]string{&d.RequiredAnyOf, &d.GrantedEffective, &d.Matched, &d.Missing,
		&d.UnknownScopes, &d.ForeignScopes, &d.Explain, &d.RequestedNotGranted, &d.Trace} {
		list(l)
	}
	return d
}
