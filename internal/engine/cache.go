package engine

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unsafe"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/scopegate/scopegate/internal/bytecache"
)

// keyedInputs are the input fields a cached decision is keyed on. A policy
// whose rules read only these (and data) is a pure function of them, so
// equal keys give equal decisions for the life of one engine (one bundle
// revision): a new engine starts with an empty cache.
var keyedInputs = map[string]bool{
	"granted_scopes": true, "requested_scopes": true, "action": true, "method": true, "path": true,
	// The policy reads scope as raw callers (opa eval) send it; the
	// engine's Input never holds it (the server maps it to granted_scopes),
	// so it is constant, absent, for every cached decision.
	"scope": true,
}

// cacheability reports why the modules' decision cannot be cached, or "",
// and the input fields beyond keyedInputs that it reads: a cached decision
// is keyed on those fields' values too (an owner check reads
// input.resource.owner and input.subject), so it stays what evaluating
// would give. Reading the whole input or a key computed at evaluation, or
// calling a non-deterministic builtin (time, rand, http.send), makes a
// decision depend on more than any key.
func cacheability(modules []*ast.Module) (string, [][]string) {
	var why string
	note := func(format string, args ...any) {
		if why == "" {
			why = fmt.Sprintf(format, args...)
		}
	}
	var fields [][]string
	field := func(path []string) {
		if !slices.ContainsFunc(fields, func(f []string) bool { return slices.Equal(f, path) }) {
			fields = append(fields, path)
		}
	}
	for _, m := range modules {
		for _, imp := range m.Imports {
			if ref, ok := imp.Path.Value.(ast.Ref); ok && ref.HasPrefix(ast.InputRootRef) {
				checkInputRef(ref, imp.Location, note, field)
			}
		}
		for _, r := range m.Rules {
			var vis *ast.GenericVisitor
			vis = ast.NewGenericVisitor(func(x any) bool {
				switch x := x.(type) {
				case *ast.Term:
					switch v := x.Value.(type) {
					case ast.Ref:
						if v.HasPrefix(ast.InputRootRef) {
							checkInputRef(v, x.Location, note, field)
						}
						for _, t := range v[1:] {
							vis.Walk(t)
						}
						return true // components walked above; the head var is not "whole input"
					case ast.Var:
						if v.Equal(ast.InputRootDocument.Value) {
							note("%s uses the whole input", where(x.Location))
						}
					case ast.Call:
						if op, ok := v[0].Value.(ast.Ref); ok {
							checkCall(op, x.Location, note)
						}
					}
				case *ast.Expr:
					if x.IsCall() {
						checkCall(x.Operator(), x.Location, note)
					}
				}
				return false
			})
			vis.Walk(r)
		}
	}
	if why != "" {
		return why, nil
	}
	// A field read whole covers the fields read inside it.
	slices.SortFunc(fields, func(a, b []string) int { return slices.Compare(a, b) })
	kept := fields[:0]
	for _, f := range fields {
		if len(kept) > 0 && len(f) >= len(kept[len(kept)-1]) && slices.Equal(f[:len(kept[len(kept)-1])], kept[len(kept)-1]) {
			continue
		}
		kept = append(kept, f)
	}
	return "", kept
}

// checkInputRef notes why ref defeats the cache, or passes the input field
// it reads (its leading object keys) to field.
func checkInputRef(ref ast.Ref, loc *ast.Location, note func(string, ...any), field func([]string)) {
	if len(ref) < 2 {
		note("%s reads the whole input", where(loc))
		return
	}
	key, ok := ref[1].Value.(ast.String)
	if !ok {
		note("%s reads input with a computed key", where(loc))
		return
	}
	if keyedInputs[string(key)] {
		return
	}
	path := []string{string(key)}
	for _, t := range ref[2:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			break // input.resource[x]: keyed on all of input.resource
		}
		path = append(path, string(s))
	}
	field(path)
}

// where names a source position as file:row.
func where(loc *ast.Location) string {
	if loc == nil {
		return "policy"
	}
	return fmt.Sprintf("%s:%d", loc.File, loc.Row)
}

func checkCall(op ast.Ref, loc *ast.Location, note func(string, ...any)) {
	if b, ok := ast.BuiltinMap[op.String()]; ok && b.Nondeterministic {
		note("%s calls non-deterministic builtin %s", where(loc), op)
	}
}

// decisionCache holds recent decisions, bounded in bytes (bytecache).
// Entries are charged what they hold (key, strings, slice headers, map
// overhead), so whatever keys callers send the cache stays within its
// budget, while keeping what is still being asked for.
type decisionCache struct {
	*bytecache.Cache[Decision]
}

// entryOverhead is what a map entry costs beyond the bytes it points to:
// the key's string header, the Decision struct (one string and nine slice
// or string headers, two bools) and the map's bucket share.
const entryOverhead = 16 + int64(unsafe.Sizeof(Decision{})) + 48

// maxEntryBytes: no entry may be charged more than this (nor more than a
// sixteenth of the budget), so outsized questions cannot crowd out the
// common ones; a typical decision is charged well under 1 KiB.
const maxEntryBytes = 16 << 10

func newDecisionCache(maxBytes int64) *decisionCache {
	return &decisionCache{bytecache.New[Decision](maxBytes)}
}

func (c *decisionCache) get(key string) (Decision, bool) { return c.Get(key) }

// put remembers d under key unless it is not worth it: decisions on
// unknown scopes or invalid input echo whatever the caller sent (and a
// caller can send endless distinct ones), and outsized entries would
// crowd out the common questions.
func (c *decisionCache) put(key string, d Decision) {
	if d.Reason == ReasonUnknownScope || d.Reason == ReasonInvalidInput {
		c.Skip()
		return
	}
	size := int64(len(key)) + decisionBytes(d) + entryOverhead
	if size > maxEntryBytes {
		c.Skip()
		return
	}
	c.Put(key, d, size)
}

// bytes is what the cache holds now, as charged.
func (c *decisionCache) bytes() int64 { return c.Bytes() }

// decisionBytes is what d's strings and slices point to.
func decisionBytes(d Decision) int64 {
	strs, lists := d.Texts()
	var n int64
	for _, s := range strs {
		n += int64(len(*s))
	}
	for _, l := range lists {
		n += int64(cap(*l)) * 16
		for _, x := range *l {
			n += int64(len(x))
		}
	}
	return n
}

// cacheKey identifies a decision by its keyed inputs. Granted and requested
// scopes are sorted because the policy treats them as sets. Every part is
// length-prefixed, so no field content can make two inputs collide.
func (e *Engine) cacheKey(in Input) string {
	if e.routeKeys != nil && in.Action == "" {
		if id, ok := e.routeKeys.match(in.Method, in.Path); ok {
			in.Path = "\x00route:" + id // no path holds a NUL (request.checkPath)
		}
	}
	key := cacheKey(in)
	if len(e.cacheFields) == 0 {
		return key
	}
	// The other fields the policy reads, by value: absent, or canonical
	// JSON (json.Marshal sorts object keys).
	b := []byte(key)
	m := in.Map()
	for _, f := range e.cacheFields {
		v, ok := lookupPath(m, f)
		if !ok {
			b = append(b, '-')
			continue
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return "" // not cached
		}
		b = strconv.AppendInt(b, int64(len(enc)), 10)
		b = append(b, ':')
		b = append(b, enc...)
	}
	return string(b)
}

// lookupPath is the value at path (object keys) in m.
func lookupPath(m map[string]any, path []string) (any, bool) {
	var v any = m
	for _, k := range path {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

func cacheKey(in Input) string {
	b := make([]byte, 0, 128)
	str := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	set := func(s []string) {
		if s == nil {
			b = append(b, '-') // absent differs from empty
			return
		}
		sorted := slices.Clone(s)
		slices.Sort(sorted)
		b = strconv.AppendInt(b, int64(len(sorted)), 10)
		b = append(b, '[')
		for _, x := range sorted {
			str(x)
		}
	}
	str(in.Action)
	str(in.Method)
	str(in.Path)
	set(in.GrantedScopes)
	set(in.RequestedScopes)
	return string(b)
}
