package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// LogMaskQuery is where a policy asks for decision-log masking, as in OPA:
// rules "mask" in package system.log, evaluated for every record with the
// record (input, result, ...) as input.
const LogMaskQuery = "data.system.log.mask"

var (
	logMaskPackage = ast.MustParseRef("data.system.log")
	maskRuleRef    = ast.Ref{ast.VarTerm("mask")}
)

// isLogMaskModule reports whether m is package system.log (which is about
// the decision log, not about decisions).
func isLogMaskModule(m *ast.Module) bool {
	return m.Package.Path.Equal(logMaskPackage)
}

// decisionModules are the modules decisions may read, for the decision
// cache's analysis: package system.log reads the log record, not the
// decision's input, unless a decision rule refers to it.
func decisionModules(modules []*ast.Module) []*ast.Module {
	out := slices.DeleteFunc(slices.Clone(modules), isLogMaskModule)
	for _, m := range out {
		refersToSystem := false
		ast.WalkRefs(m, func(r ast.Ref) bool {
			refersToSystem = refersToSystem || r.HasPrefix(systemRef)
			return refersToSystem
		})
		if refersToSystem {
			return modules
		}
	}
	return out
}

var systemRef = ast.MustParseRef("data.system")

// prepareLogMask prepares LogMaskQuery when a module of package system.log
// defines mask; nil otherwise.
func prepareLogMask(ctx context.Context, store storage.Store, modules []*ast.Module) (*rego.PreparedEvalQuery, error) {
	if !slices.ContainsFunc(modules, func(m *ast.Module) bool {
		return isLogMaskModule(m) && slices.ContainsFunc(m.Rules, func(r *ast.Rule) bool {
			return r.Head.Ref().Equal(maskRuleRef) // Ref covers a head given by Name too
		})
	}) {
		return nil, nil
	}
	opts := []func(*rego.Rego){rego.Query(LogMaskQuery), rego.Store(store), rego.StoreReadAST(true)}
	for _, m := range modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", LogMaskQuery, err)
	}
	return &pq, nil
}

// HasLogMask reports whether the policy defines data.system.log.mask.
func (e *Engine) HasLogMask() bool { return e != nil && e.logMask != nil }

// LogMask evaluates the policy's data.system.log.mask for one decision-log
// record and returns the JSON pointers (from the record root, such as
// "/input/resource/owner") it asks to mask, sorted. Like OPA it accepts a
// pointer as a string or as an object with a "path" (OPA's {"op": "upsert",
// "path": ..., "value": ...}); scopegate masks either way, with "***". An
// undefined mask masks nothing. An evaluation error, or a member that is not
// a pointer, is an error: the caller cannot honour the policy's masking.
func (e *Engine) LogMask(ctx context.Context, record map[string]any) ([]string, error) {
	if !e.HasLogMask() {
		return nil, nil
	}
	if e.evalTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.evalTimeout)
		defer cancel()
	}
	rs, err := e.logMask.Eval(ctx, rego.EvalInput(record))
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", LogMaskQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	var members []any
	switch v := rs[0].Expressions[0].Value.(type) {
	case []any:
		members = v
	default:
		return nil, fmt.Errorf("%s is %T, want a set of JSON pointers", LogMaskQuery, v)
	}
	out := make([]string, 0, len(members))
	for _, m := range members {
		switch m := m.(type) {
		case string:
			out = append(out, m)
		case map[string]any:
			p, ok := m["path"].(string)
			if !ok {
				return nil, fmt.Errorf("%s: member %v has no string path", LogMaskQuery, m)
			}
			out = append(out, p)
		default:
			return nil, fmt.Errorf("%s: member %v (%T) is not a JSON pointer", LogMaskQuery, m, m)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
