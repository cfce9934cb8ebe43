package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// nameRE accepts RESOURCE:VERB ("project:launch") or a bare word ("public"):
// lower-case letters, digits and underscores, starting with a letter.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(:[a-z][a-z0-9_]*)?$`)

var wordRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// ValidName reports whether s is a well-formed scope name.
func ValidName(s string) bool { return len(s) <= maxNameLen && nameRE.MatchString(s) }

const (
	maxNameLen        = 128
	maxDescriptionLen = 1024
	// SupportedVersion is the only catalog schema version understood.
	SupportedVersion = 1
)

// Problem is one validation error, located in the source file.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) Error() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Problems is every validation error found in one catalog, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Parse decodes and validates a catalog. file names the source in errors.
// On failure the error is a Problems listing everything wrong, not just the
// first thing, so one edit-run cycle fixes a whole catalog.
func Parse(file string, src []byte) (*Catalog, error) {
	p := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, Problems{{File: file, Line: yamlErrLine(err), Msg: "invalid YAML: " + yamlErrMsg(err)}}
	}
	// Structure, references, cycles and the manage rule are all checked in
	// one run, whatever the others found, so one edit fixes every error.
	c := p.document(&doc)
	p.validate(c)
	if len(p.problems) > 0 {
		sort.SliceStable(p.problems, func(i, j int) bool { return p.problems[i].Line < p.problems[j].Line })
		return nil, p.problems
	}
	c.computeClosure()
	return c, nil
}

type parser struct {
	file     string
	problems Problems
	// defaultLine is where default: is written, for errors about its value.
	defaultLine int
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.problems = append(p.problems, Problem{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) document(doc *yaml.Node) *Catalog {
	c := &Catalog{File: p.file, index: map[string]int{}}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.errorf(1, "empty catalog: expected keys version, default, scopes")
		return c
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "catalog must be a mapping with keys version, default, scopes")
		return c
	}
	seen := map[string]bool{}
	var scopesNode *yaml.Node
	for k, v := range pairs(root) {
		if seen[k.Value] {
			p.errorf(k.Line, "key %q given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "version":
			n, err := strconv.Atoi(v.Value)
			if v.Kind != yaml.ScalarNode || err != nil {
				p.errorf(v.Line, "version must be an integer")
			} else if n != SupportedVersion {
				p.errorf(v.Line, "unsupported catalog version %d (supported: %d)", n, SupportedVersion)
			}
			c.Version = n
		case "default":
			c.Default = p.scalar(v, "default")
			p.defaultLine = v.Line
		case "scopes":
			scopesNode = v
		case "foreign":
			p.foreign(c, v)
		default:
			p.errorf(k.Line, "unknown key %q (expected version, default, scopes, foreign)", k.Value)
		}
	}
	for _, key := range []string{"version", "default", "scopes"} {
		if !seen[key] {
			p.errorf(root.Line, "missing key %q", key)
		}
	}
	if scopesNode == nil {
		return c
	}
	if scopesNode.Kind != yaml.SequenceNode {
		p.errorf(scopesNode.Line, "scopes must be a list")
		return c
	}
	for _, n := range scopesNode.Content {
		s, ok := p.scope(n)
		if !ok {
			continue
		}
		if first, dup := c.index[s.Name]; dup {
			p.errorf(s.Line, "duplicate scope %q (first defined at line %d)", s.Name, c.Scopes[first].Line)
			continue
		}
		c.index[s.Name] = len(c.Scopes)
		c.Scopes = append(c.Scopes, s)
	}
	if len(c.Scopes) == 0 && len(p.problems) == 0 {
		p.errorf(scopesNode.Line, "scopes must not be empty")
	}
	return c
}

func (p *parser) scope(n *yaml.Node) (Scope, bool) {
	s := Scope{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "scope entry must be a mapping with name and description")
		return s, false
	}
	ok := true
	seen := map[string]bool{}
	var includesNode *yaml.Node
	for k, v := range pairs(n) {
		if seen[k.Value] {
			p.errorf(k.Line, "key %q given twice", k.Value)
			ok = false
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "name":
			s.Name = p.scalar(v, "name")
			if s.Name != "" && !ValidName(s.Name) {
				p.errorf(v.Line, "bad scope name %q: want RESOURCE:VERB or a bare word (lower-case letters, digits, _; at most %d characters)", s.Name, maxNameLen)
				ok = false
			}
		case "description":
			s.Description = strings.TrimSpace(p.scalar(v, "description"))
			if len(s.Description) > maxDescriptionLen {
				p.errorf(v.Line, "description longer than %d characters", maxDescriptionLen)
				ok = false
			}
		case "resource":
			s.Resource = p.scalar(v, "resource")
			if s.Resource != "" && !wordRE.MatchString(s.Resource) {
				p.errorf(v.Line, "bad resource %q: want a bare word", s.Resource)
				ok = false
			}
		case "sensitive":
			if v.Kind != yaml.ScalarNode || (v.Value != "true" && v.Value != "false") {
				p.errorf(v.Line, "sensitive must be true or false")
				ok = false
			}
			s.Sensitive = v.Value == "true"
		case "includes":
			includesNode = v
		default:
			p.errorf(k.Line, "unknown key %q in scope (expected name, description, resource, sensitive, includes)", k.Value)
			ok = false
		}
	}
	if includesNode != nil {
		s.Includes = p.includes(includesNode, s.Name)
		ok = ok && includesNode.Kind == yaml.SequenceNode
	}
	if s.Name == "" {
		if !seen["name"] {
			p.errorf(n.Line, "scope without a name")
		}
		return s, false
	}
	if s.Description == "" {
		p.errorf(n.Line, "scope %q has no description (it is shown on consent forms)", s.Name)
		ok = false
	}
	if s.Resource == "" {
		s.Resource = resourceOf(s.Name)
	}
	// A malformed entry still counts as defined, so that its includers do
	// not also report it as unknown.
	return s, ok || ValidName(s.Name)
}

func (p *parser) includes(v *yaml.Node, owner string) []string {
	if v.Kind != yaml.SequenceNode {
		p.errorf(v.Line, "includes of %q must be a list of scope names", owner)
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, item := range v.Content {
		name := p.scalar(item, "includes")
		if name == "" {
			continue
		}
		if seen[name] {
			p.errorf(item.Line, "%q lists %q twice in includes", owner, name)
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	return out
}

// scalar returns a non-empty string scalar, or "" after recording why not.
func (p *parser) scalar(v *yaml.Node, field string) string {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" || v.Value == "" {
		p.errorf(v.Line, "%s must be a non-empty string", field)
		return ""
	}
	return v.Value
}

// foreign reads the foreign scopes: {names: [...], prefixes: [...]}.
func (p *parser) foreign(c *Catalog, v *yaml.Node) {
	if v.Kind != yaml.MappingNode {
		p.errorf(v.Line, "foreign must be a mapping with names and/or prefixes")
		return
	}
	for k, list := range pairs(v) {
		var dst *[]string
		switch k.Value {
		case "names":
			dst = &c.Foreign
		case "prefixes":
			dst = &c.ForeignPrefixes
		default:
			p.errorf(k.Line, "unknown key %q in foreign (expected names, prefixes)", k.Value)
			continue
		}
		if list.Kind != yaml.SequenceNode {
			p.errorf(list.Line, "foreign %s must be a list", k.Value)
			continue
		}
		for _, item := range list.Content {
			s := p.scalar(item, "foreign "+k.Value)
			switch {
			case s == "":
			case strings.ContainsAny(s, " \t\"\\") || !utf8.ValidString(s):
				p.errorf(item.Line, "foreign %s %q is not a scope token (RFC 6749: no spaces, quotes or backslashes)", k.Value, s)
			case slices.Contains(*dst, s):
				p.errorf(item.Line, "foreign %s lists %q twice", k.Value, s)
			default:
				*dst = append(*dst, s)
			}
		}
	}
}

// validate checks what needs the whole catalog: known includes, no cycles,
// a known default, and that RESOURCE:manage confers its whole resource. The
// catalog may be partial (entries with errors left out) and hold unknown
// includes and cycles: each check skips what another reports.
func (p *parser) validate(c *Catalog) {
	for _, s := range c.Scopes {
		for _, inc := range s.Includes {
			if inc == s.Name {
				p.errorf(s.Line, "scope %q includes itself", s.Name)
			} else if _, ok := c.index[inc]; !ok {
				p.errorf(s.Line, "scope %q includes unknown scope %q%s", s.Name, inc, suggest(c, inc))
			}
		}
	}
	if c.Default != "" {
		if _, ok := c.index[c.Default]; !ok {
			p.errorf(p.defaultLine, "default scope %q is not in the catalog%s", c.Default, suggest(c, c.Default))
		}
	}
	for _, s := range c.Scopes {
		if slices.Contains(c.Foreign, s.Name) || slices.ContainsFunc(c.ForeignPrefixes, func(pre string) bool { return strings.HasPrefix(s.Name, pre) }) {
			p.errorf(s.Line, "scope %q is declared foreign too: a catalog scope confers, a foreign one does not", s.Name)
		}
	}
	for _, cycle := range findCycles(c) {
		first := c.Scopes[c.index[cycle[0]]]
		p.errorf(first.Line, "inclusion cycle: %s", strings.Join(cycle, " -> "))
	}
	p.checkManage(c)
}

// known lists the includes of s that name catalog scopes other than s.
func known(c *Catalog, s Scope) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for _, inc := range s.Includes {
			if _, ok := c.index[inc]; ok && inc != s.Name && !yield(inc) {
				return
			}
		}
	}
}

// reach is every scope name confers through known includes, itself
// included; it terminates on cycles.
func reach(c *Catalog, name string) map[string]bool {
	seen := map[string]bool{name: true}
	stack := []string{name}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for inc := range known(c, c.Scopes[c.index[n]]) {
			if !seen[inc] {
				seen[inc] = true
				stack = append(stack, inc)
			}
		}
	}
	return seen
}

// checkManage enforces the provider rule that RESOURCE:manage includes every
// other scope of its resource, so that adding project:foo without adding it
// to project:manage is caught at gen time, not by a confused user.
func (p *parser) checkManage(c *Catalog) {
	byResource := map[string][]string{}
	for _, s := range c.Scopes {
		byResource[s.Resource] = append(byResource[s.Resource], s.Name)
	}
	for _, s := range c.Scopes {
		res, verb, ok := strings.Cut(s.Name, ":")
		if !ok || verb != "manage" {
			continue
		}
		implied := reach(c, s.Name)
		var missing []string
		for _, other := range byResource[res] {
			if !implied[other] {
				missing = append(missing, other)
			}
		}
		if len(missing) > 0 {
			p.errorf(s.Line, "%s must include every %s scope; missing %s", s.Name, res, strings.Join(missing, ", "))
		}
	}
}

// findCycles returns the inclusion cycles a depth-first walk closes, each as
// a path a -> b -> ... -> a (every cyclic part of the graph is in at least
// one). Unknown includes and self-includes are reported elsewhere.
func findCycles(c *Catalog) [][]string {
	const (
		unvisited = iota
		onStack
		done
	)
	state := make(map[string]int, len(c.Scopes))
	var stack []string
	var cycles [][]string
	var visit func(name string)
	visit = func(name string) {
		state[name] = onStack
		stack = append(stack, name)
		for inc := range known(c, c.Scopes[c.index[name]]) {
			switch state[inc] {
			case onStack:
				i := slices.Index(stack, inc)
				cycles = append(cycles, append(slices.Clone(stack[i:]), inc))
			case unvisited:
				visit(inc)
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, s := range c.Scopes {
		if state[s.Name] == unvisited {
			visit(s.Name)
		}
	}
	return cycles
}

// suggest names a catalog scope close to a misspelt one.
func suggest(c *Catalog, name string) string {
	best, bestDist := "", 3
	for _, s := range c.Scopes {
		if d := editDistance(name, s.Name); d < bestDist {
			best, bestDist = s.Name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// pairs iterates a mapping node's key/value pairs.
func pairs(m *yaml.Node) func(yield func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if !yield(m.Content[i], m.Content[i+1]) {
				return
			}
		}
	}
}

// yamlErrLine digs the line out of a yaml.v3 error ("yaml: line 3: ...").
func yamlErrLine(err error) int {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if _, rest, ok := strings.Cut(msg, "line "); ok {
		if n, err := strconv.Atoi(strings.SplitN(rest, ":", 2)[0]); err == nil {
			return n
		}
	}
	return 1
}

func yamlErrMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if _, rest, ok := strings.Cut(msg, "line "); ok {
		if _, after, ok := strings.Cut(rest, ": "); ok {
			return after
		}
	}
	return msg
}
