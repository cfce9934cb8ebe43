// Package advisor is scopegate's least-privilege advisor. From the decision
// log it works out, for each OAuth client, the scopes its tokens were
// granted, the scopes its allowed decisions actually needed, and the
// narrowest set of scopes it should request instead.
//
// For every allowed decision the advisor takes the narrowest scope that
// would have satisfied it (the one of result.required_any_of that confers
// the least, by the catalog's closure), then drops from the union every
// scope another one implies. What remains is the smallest request under
// which every allowed decision of the period would still have been allowed.
// Denied decisions change nothing in that set: they are listed apart, with
// the scope that was missing.
package advisor

import (
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/util"

	"github.com/scopegate/scopegate/internal/catalog"
	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/gen"
)

// MaxSubjects bounds the subjects listed per client (Subjects counts all).
const MaxSubjects = 20

// Report is the advice for every client seen in the period.
type Report struct {
	// From and To echo the period asked for (zero: unbounded).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// FirstSeen and LastSeen bound the records actually read.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Records counts the decisions read; Unattributed those without a
	// client_id (invalid input, or callers that do not send one), which no
	// client's advice includes.
	Records      int `json:"records"`
	Unattributed int `json:"unattributed"`
	// Clients, by client_id.
	Clients []Client `json:"clients"`
}

// Client is the advice for one client_id. Every list is sorted and never
// nil.
type Client struct {
	ClientID string `json:"client_id"`
	// Subjects: up to MaxSubjects of the subjects seen; SubjectCount: all.
	Subjects     []string  `json:"subjects"`
	SubjectCount int       `json:"subject_count"`
	Decisions    int       `json:"decisions"`
	Allowed      int       `json:"allowed"`
	Denied       int       `json:"denied"`
	FirstSeen    time.Time `json:"first_seen"`
	LastSeen     time.Time `json:"last_seen"`
	// Granted is the union of the scopes its tokens were granted, as the
	// tokens named them; Requested the union of what it asked for, where
	// the caller sent requested_scopes.
	Granted   []string `json:"granted"`
	Requested []string `json:"requested"`
	// Needed is the narrowest set of scopes that would have allowed every
	// allowed decision; Recommended is the same as an OAuth scope string.
	Needed      []string `json:"needed"`
	Recommended string   `json:"recommended"`
	// Unused: granted scopes that satisfied no allowed decision.
	Unused []string `json:"unused"`
	// Excess: what the grants confer that Needed does not (what asking for
	// Needed instead takes away).
	Excess []string `json:"excess"`
	// SensitiveExcess: the sensitive scopes among Excess.
	SensitiveExcess []string `json:"sensitive_excess"`
	// Unknown: granted names the catalog lacks. They confer nothing, and a
	// token naming one is denied (unknown_scope).
	Unknown []string `json:"unknown"`
	// OverBroad: granted scopes that were used but are broader than what
	// the use needed.
	OverBroad []OverBroad `json:"over_broad"`
	// Actions: what its allowed decisions did.
	Actions []ActionUse `json:"actions"`
	// Missing: what its denied decisions lacked.
	Missing []Missing `json:"missing"`
	// LeastPrivilege: the grants already confer no more than Needed and
	// name no unknown scope.
	LeastPrivilege bool `json:"least_privilege"`
	// Findings say the above in sentences, most important first.
	Findings []string `json:"findings"`
}

// OverBroad is a granted scope that served allowed decisions which a
// narrower scope would have served as well.
type OverBroad struct {
	Scope string `json:"scope"`
	// Manage: a RESOURCE:manage scope (full access to a resource).
	Manage bool `json:"manage"`
	// UsedFor: the actions it satisfied. Narrower: the Needed scopes it
	// implies, which would have done.
	UsedFor  []string `json:"used_for"`
	Narrower []string `json:"narrower"`
}

// ActionUse is one action the client was allowed.
type ActionUse struct {
	Action string `json:"action"`
	Count  int    `json:"count"`
	// Narrowest is the scope the advisor picked for it.
	Narrowest string `json:"narrowest"`
	// Matched: the granted scopes that satisfied it (union).
	Matched []string `json:"matched"`
}

// Missing is one action the client was denied for a missing scope.
type Missing struct {
	Action string `json:"action"`
	Reason string `json:"reason"`
	Count  int    `json:"count"`
	// Scope: the narrowest scope that would have allowed it, if known.
	Scope string `json:"scope,omitempty"`
}

// Advisor accumulates decisions. Use New, Add, then Report.
type Advisor struct {
	cat     *engine.CatalogView
	from    time.Time
	to      time.Time
	report  Report
	clients map[string]*acc
}

type acc struct {
	c         Client
	subjects  map[string]bool
	granted   map[string]bool
	requested map[string]bool
	picked    map[string]bool            // narrowest per allowed decision
	used      map[string]map[string]bool // granted scope -> actions it matched
	actions   map[string]*ActionUse
	matched   map[string]map[string]bool // action -> matched scopes
	missing   map[[2]string]*Missing
}

// New returns an Advisor that judges breadth with cat. from and to only
// label the report: the caller selects the records.
func New(cat *engine.CatalogView, from, to time.Time) *Advisor {
	return &Advisor{cat: cat, from: from, to: to, clients: map[string]*acc{}}
}

// Analyze runs an Advisor over records, as decisionlog.Query yields them.
func Analyze(cat *engine.CatalogView, from, to time.Time, records iter.Seq2[decisionlog.Event, error]) (Report, error) {
	a := New(cat, from, to)
	for ev, err := range records {
		if err != nil {
			return a.Report(), err
		}
		a.Add(ev)
	}
	return a.Report(), nil
}

// Add takes one decision-log record into account.
func (a *Advisor) Add(ev decisionlog.Event) {
	r := &a.report
	r.Records++
	if r.FirstSeen.IsZero() || ev.Timestamp.Before(r.FirstSeen) {
		r.FirstSeen = ev.Timestamp
	}
	if ev.Timestamp.After(r.LastSeen) {
		r.LastSeen = ev.Timestamp
	}
	if ev.ClientID == "" {
		r.Unattributed++
		return
	}
	c := a.clients[ev.ClientID]
	if c == nil {
		c = &acc{
			c:        Client{ClientID: ev.ClientID},
			subjects: map[string]bool{}, granted: map[string]bool{}, requested: map[string]bool{},
			picked: map[string]bool{}, used: map[string]map[string]bool{},
			actions: map[string]*ActionUse{}, matched: map[string]map[string]bool{}, missing: map[[2]string]*Missing{},
		}
		a.clients[ev.ClientID] = c
	}
	c.c.Decisions++
	if c.c.FirstSeen.IsZero() || ev.Timestamp.Before(c.c.FirstSeen) {
		c.c.FirstSeen = ev.Timestamp
	}
	if ev.Timestamp.After(c.c.LastSeen) {
		c.c.LastSeen = ev.Timestamp
	}
	if ev.Subject != "" {
		c.subjects[ev.Subject] = true
	}
	for _, s := range decisionlog.GrantedScopes(ev) {
		c.granted[s] = true
	}
	for _, s := range requestedScopes(ev) {
		c.requested[s] = true
	}
	res := readResult(ev)
	action := res.action
	if action == "" {
		action = "(unknown action)"
	}
	if !ev.Allow {
		c.c.Denied++
		key := [2]string{action, ev.Reason}
		m := c.missing[key]
		if m == nil {
			m = &Missing{Action: action, Reason: ev.Reason}
			c.missing[key] = m
		}
		m.Count++
		if m.Scope == "" {
			m.Scope = res.narrowest
			if m.Scope == "" && len(res.missing) > 0 {
				m.Scope = res.missing[0]
			}
		}
		return
	}
	c.c.Allowed++
	pick := a.narrowest(res.requiredAnyOf)
	if pick == "" && len(res.matched) > 0 {
		// A record without required_any_of (an older policy): the
		// narrowest of what satisfied it.
		pick = a.narrowest(res.matched)
	}
	if pick != "" {
		c.picked[pick] = true
	}
	u := c.actions[action]
	if u == nil {
		u = &ActionUse{Action: action, Narrowest: pick}
		c.actions[action] = u
		c.matched[action] = map[string]bool{}
	}
	u.Count++
	for _, s := range res.matched {
		c.matched[action][s] = true
		if c.used[s] == nil {
			c.used[s] = map[string]bool{}
		}
		c.used[s][action] = true
	}
}

// narrowest picks, among scopes, the one that confers the least: the
// smallest closure, then the earliest in the catalog, then by name. Scopes
// the catalog lacks count as conferring only themselves but lose ties.
func (a *Advisor) narrowest(scopes []string) string {
	best, bestSize, bestOrder := "", 0, 0
	for _, s := range scopes {
		size, order := 1, 1<<30
		if info, ok := a.cat.Lookup(s); ok {
			size, order = len(info.Implies), info.Order
		}
		if best == "" || size < bestSize || size == bestSize && (order < bestOrder || order == bestOrder && s < best) {
			best, bestSize, bestOrder = s, size, order
		}
	}
	return best
}

// implies reports whether a confers b (every scope confers itself).
func (a *Advisor) implies(x, y string) bool {
	if x == y {
		return true
	}
	info, ok := a.cat.Lookup(x)
	return ok && slices.Contains(info.Implies, y)
}

// minimal drops every scope of set that another one implies; of two scopes
// implying each other (hand-made data only) the first by name stays.
func (a *Advisor) minimal(set []string) []string {
	out := []string{}
	for _, s := range set {
		redundant := false
		for _, t := range set {
			if t != s && a.implies(t, s) && (!a.implies(s, t) || t < s) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// closure is everything set confers; unknown scopes confer themselves.
func (a *Advisor) closure(set []string) map[string]bool {
	out := map[string]bool{}
	for _, s := range set {
		out[s] = true
		if info, ok := a.cat.Lookup(s); ok {
			for _, i := range info.Implies {
				out[i] = true
			}
		}
	}
	return out
}

// Report returns the advice so far.
func (a *Advisor) Report() Report {
	r := a.report
	r.From, r.To = a.from, a.to
	r.Clients = make([]Client, 0, len(a.clients))
	for _, c := range a.clients {
		r.Clients = append(r.Clients, a.client(c))
	}
	sort.Slice(r.Clients, func(i, j int) bool { return r.Clients[i].ClientID < r.Clients[j].ClientID })
	return r
}

func (a *Advisor) client(c *acc) Client {
	out := c.c
	out.SubjectCount = len(c.subjects)
	out.Subjects = keys(c.subjects)
	if len(out.Subjects) > MaxSubjects {
		out.Subjects = out.Subjects[:MaxSubjects]
	}
	out.Granted = keys(c.granted)
	out.Requested = keys(c.requested)
	out.Needed = a.minimal(keys(c.picked))
	out.Recommended = strings.Join(out.Needed, " ")

	out.Unused = []string{}
	for _, g := range out.Granted {
		if len(c.used[g]) == 0 {
			out.Unused = append(out.Unused, g)
		}
	}

	out.Unknown = []string{}
	for _, g := range out.Granted {
		if _, ok := a.cat.Lookup(g); !ok {
			out.Unknown = append(out.Unknown, g)
		}
	}
	granted, needed := a.closure(out.Granted), a.closure(out.Needed)
	out.Excess, out.SensitiveExcess = []string{}, []string{}
	for _, s := range keys(granted) {
		if needed[s] || slices.Contains(out.Unknown, s) {
			continue
		}
		out.Excess = append(out.Excess, s)
		if info, ok := a.cat.Lookup(s); ok && info.Sensitive {
			out.SensitiveExcess = append(out.SensitiveExcess, s)
		}
	}
	out.LeastPrivilege = len(out.Excess) == 0 && len(out.Unknown) == 0

	out.OverBroad = []OverBroad{}
	for _, g := range out.Granted {
		if len(c.used[g]) == 0 || slices.Contains(out.Needed, g) {
			continue
		}
		ob := OverBroad{Scope: g, Manage: strings.HasSuffix(g, ":manage"), UsedFor: keys(c.used[g]), Narrower: []string{}}
		for _, n := range out.Needed {
			if a.implies(g, n) {
				ob.Narrower = append(ob.Narrower, n)
			}
		}
		// A scope that implies none of the needed ones was used only
		// where another granted scope served too: plain excess, listed
		// under Unused or Excess, not here.
		if len(ob.Narrower) > 0 {
			out.OverBroad = append(out.OverBroad, ob)
		}
	}

	out.Actions = make([]ActionUse, 0, len(c.actions))
	for name, u := range c.actions {
		u.Matched = keys(c.matched[name])
		out.Actions = append(out.Actions, *u)
	}
	sort.Slice(out.Actions, func(i, j int) bool { return out.Actions[i].Action < out.Actions[j].Action })
	out.Missing = make([]Missing, 0, len(c.missing))
	for _, m := range c.missing {
		out.Missing = append(out.Missing, *m)
	}
	sort.Slice(out.Missing, func(i, j int) bool {
		if out.Missing[i].Action != out.Missing[j].Action {
			return out.Missing[i].Action < out.Missing[j].Action
		}
		return out.Missing[i].Reason < out.Missing[j].Reason
	})
	out.Findings = a.findings(out)
	return out
}

func (a *Advisor) findings(c Client) []string {
	var f []string
	switch {
	case c.Allowed == 0:
		f = append(f, fmt.Sprintf("no allowed decision in this period: none of its %d granted scope(s) was needed", len(c.Granted)))
	case c.LeastPrivilege:
		f = append(f, "least privilege: its grants confer nothing its allowed decisions did not need")
	default:
		h := fmt.Sprintf("request %q instead: it would still allow every allowed decision", c.Recommended)
		if len(c.Excess) > 0 {
			h += " and no longer confer " + strings.Join(c.Excess, ", ")
		}
		f = append(f, h)
	}
	if len(c.Unknown) > 0 {
		f = append(f, fmt.Sprintf("drop %s: not in the catalog, so a token naming it is denied (unknown_scope)", strings.Join(c.Unknown, ", ")))
	}
	for _, o := range c.OverBroad {
		kind := "broader than needed"
		if o.Manage {
			kind = "full access"
		}
		f = append(f, fmt.Sprintf("%s (%s) was only used for %s: %s would do", o.Scope, kind, strings.Join(o.UsedFor, ", "), strings.Join(o.Narrower, " ")))
	}
	if len(c.Unused) > 0 {
		f = append(f, fmt.Sprintf("never used: %s", strings.Join(c.Unused, ", ")))
	}
	if len(c.SensitiveExcess) > 0 {
		f = append(f, fmt.Sprintf("sensitive scopes granted but never needed: %s", strings.Join(c.SensitiveExcess, ", ")))
	}
	for _, m := range c.Missing {
		if m.Reason == engine.ReasonMissingScope && m.Scope != "" {
			f = append(f, fmt.Sprintf("denied %s %d time(s): it lacked %s (not part of the recommendation)", m.Action, m.Count, m.Scope))
		}
	}
	return f
}

// result is what the advisor reads from a record's result.
type result struct {
	action        string
	requiredAnyOf []string
	matched       []string
	missing       []string
	narrowest     string
}

// readResult reads a record's result, whether it was decoded from a log
// line (a JSON object) or is still the engine's decision.
func readResult(ev decisionlog.Event) result {
	var r result
	switch d := ev.Result.(type) {
	case engine.Decision:
		r = result{action: d.Action, requiredAnyOf: d.RequiredAnyOf, matched: d.Matched, missing: d.Missing, narrowest: d.Narrowest}
	case *engine.Decision:
		if d != nil {
			r = result{action: d.Action, requiredAnyOf: d.RequiredAnyOf, matched: d.Matched, missing: d.Missing, narrowest: d.Narrowest}
		}
	case map[string]any:
		r.action, _ = d["action"].(string)
		r.narrowest, _ = d["narrowest"].(string)
		r.requiredAnyOf = stringList(d["required_any_of"])
		r.matched = stringList(d["matched"])
		r.missing = stringList(d["missing"])
	case json.RawMessage:
		var m map[string]any
		if json.Unmarshal(d, &m) == nil {
			return readResult(decisionlog.Event{Result: m, Input: ev.Input})
		}
	}
	if r.action == "" {
		if in, ok := ev.Input.(map[string]any); ok {
			if s, ok := in["action"].(string); ok {
				r.action = s
			} else if m, ok := in["method"].(string); ok {
				p, _ := in["path"].(string)
				r.action = strings.ToUpper(m) + " " + p
			}
		}
	}
	return r
}

func requestedScopes(ev decisionlog.Event) []string {
	in, ok := ev.Input.(map[string]any)
	if !ok {
		return nil
	}
	switch rs := in["requested_scopes"].(type) {
	case string:
		return strings.Fields(rs)
	default:
		return stringList(rs)
	}
}

func stringList(x any) []string {
	switch l := x.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, v := range l {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CatalogFile reads a scopes.yaml into the catalog view the advisor judges
// breadth with, the same view an engine builds from generated data.
func CatalogFile(path string) (*engine.CatalogView, error) {
	c, err := catalog.LoadFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := gen.JSON(c)
	if err != nil {
		return nil, fmt.Errorf("generate catalog data: %w", err)
	}
	var data map[string]any
	if err := util.UnmarshalJSON(raw, &data); err != nil {
		return nil, fmt.Errorf("decode catalog data: %w", err)
	}
	return engine.NewCatalogView(data)
}
