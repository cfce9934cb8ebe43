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
	strs, lists := d.Texts()
	for _, s := range strs {
		str(s)
	}
	for _, l := range lists {
		list(l)
	}
	return d
}

// Texts lists d's text fields, its strings then its string lists, the most
// telling first (the order a bounded copy keeps them in): the one list
// that masking, the cache's byte charge and the log's bounds all walk, so
// none of them misses a field and a new field is added here only.
func (d *Decision) Texts() (strs []*string, lists []*[]string) {
	return []*string{&d.Reason, &d.Action, &d.Route, &d.Narrowest, &d.Remedy, &d.WWWAuthenticate},
		[]*[]string{&d.Missing, &d.RequiredAnyOf, &d.Matched, &d.Explain, &d.UnknownScopes, &d.ForeignScopes,
			&d.RequestedNotGranted, &d.GrantedEffective, &d.Trace}
}
