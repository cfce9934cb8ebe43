package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// realistic runs the workload a gateway forwards (workload.go) against
// scopegate and `opa run --server`, in interleaved rounds: scopegate on one
// repeated question, on the diverse questions and on their ABAC variant;
// OPA on scopegate's own policy (the same bundle, and the ABAC variant)
// and on a minimal scope check (bench/minimal). Answers are compared before
// anything is timed. It prints the median throughput of each and the
// ratios the targets are stated in.
func realistic(ctx context.Context, cfg config) error {
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	diverse, err := diverseBodies(cfg.bodies, false)
	if err != nil {
		return err
	}
	abacBodies, err := diverseBodies(cfg.bodies, true)
	if err != nil {
		return err
	}
	abacDir, err := abacPolicies(cfg.out)
	if err != nil {
		return err
	}
	serve := func(name string, extra ...string) *server {
		s := &server{name: name, ready: "/ready", decide: "/v1/decide"}
		s.args = append([]string{"serve", "--log-level", "warn", "--decision-log", filepath.Join(cfg.out, name+".log")}, extra...)
		s.args = append(s.args, strings.Fields(cfg.serveArgs)...)
		s.bin = cfg.scopegate
		return s
	}
	opa := func(name, query string, load ...string) *server {
		s := &server{name: name, ready: "/health", decide: "/v1/data/" + query, wrap: true, bin: cfg.opa}
		s.args = append([]string{"run", "--server", "--log-level", "error", "--disable-telemetry"}, load...)
		return s
	}
	sg := serve("scopegate")
	sgABAC := serve("scopegate-abac", "--catalog", "scopes.yaml", "--policies", abacDir)
	op := opa("opa-bundle", "scopegate/authz/decision", "--bundle", "bundles/scopegate")
	op.ready = "/health?bundles"
	opABAC := opa("opa-abac", "scopegate/authz/decision", abacDir, "bundles/scopegate/data.json")
	opMin := opa("opa-minimal", "scopegate/minimal/decision", "bench/minimal/minimal.rego", "bundles/scopegate/data.json")
	stops := map[*server]func(){}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	for _, s := range []*server{sg, sgABAC, op, opABAC, opMin} {
		if stops[s], err = start(cfg, s, s.bin, s.args); err != nil {
			return err
		}
	}

	// The same answers before any timing: scopegate and OPA on the same
	// policy, and the minimal check's allow against scopegate's, on the
	// first checkBodies questions (all of them would take minutes); the
	// others are made the same way.
	const checkBodies = 4000
	denied, err := agree(sg, op, diverse[:min(len(diverse), checkBodies)])
	if err != nil {
		return err
	}
	fmt.Printf("diverse: %d distinct questions; scopegate and opa agree on each of the first %d, %.0f%% denied\n", len(diverse), min(len(diverse), checkBodies), 100*denied)
	deniedABAC, err := agree(sgABAC, opABAC, abacBodies[:min(len(abacBodies), checkBodies)])
	if err != nil {
		return err
	}
	fmt.Printf("abac: %d distinct questions; scopegate and opa agree on each of the first %d, %.0f%% denied\n", len(abacBodies), min(len(abacBodies), checkBodies), 100*deniedABAC)
	// OPA keeps no decision cache, so the minimal check's questions need
	// not be fresh: those of the checked questions, cycled.
	minimal, err := minimalBodies(sg, opMin, diverse[:min(len(diverse), checkBodies)])
	if err != nil {
		return err
	}

	// The checks asked scopegate every question, and each round asks them
	// all again: scopegate starts afresh before each round, so that no
	// timed question is answered from a cache an earlier one filled.
	restart := func() error {
		for _, s := range []*server{sg, sgABAC} {
			stops[s]()
			if stops[s], err = start(cfg, s, s.bin, s.args); err != nil {
				return err
			}
		}
		return nil
	}

	type run struct {
		label  string
		srv    *server
		bodies [][]byte
		tput   []float64
	}
	runs := []*run{
		{label: "scopegate repeated", srv: sg, bodies: diverse[:1]},
		{label: "scopegate diverse", srv: sg, bodies: diverse},
		{label: "opa-bundle diverse", srv: op, bodies: diverse},
		{label: "opa-minimal diverse", srv: opMin, bodies: minimal},
		{label: "scopegate abac", srv: sgABAC, bodies: abacBodies},
		{label: "opa-abac abac", srv: opABAC, bodies: abacBodies},
	}
	for round := range cfg.rounds {
		if err := restart(); err != nil {
			return err
		}
		for _, r := range runs {
			s := *r.srv // as started this round
			s.name = strings.ReplaceAll(r.label, " ", "-")
			if s.targets, err = writeTargets(cfg.out, &s, r.bodies); err != nil {
				return err
			}
			rep, err := attack(ctx, cfg, &s, []string{"-rate=0", "-max-workers=" + strconv.Itoa(cfg.workers), "-workers=" + strconv.Itoa(cfg.workers)})
			if err != nil {
				return err
			}
			if rep.Success < 1 {
				return fmt.Errorf("%s: %.2f%% success", r.label, 100*rep.Success)
			}
			r.tput = append(r.tput, rep.Throughput)
			fmt.Printf("round %d: %-22s %8.0f req/s\n", round+1, r.label, rep.Throughput)
		}
	}
	med := map[string]float64{}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nworkload (%d connections, %s steps, %d rounds)\tmedian req/s\trounds\n", cfg.workers, cfg.duration, cfg.rounds)
	for _, r := range runs {
		med[r.label] = median(r.tput)
		fmt.Fprintf(tw, "%s\t%.0f\t%s\n", r.label, med[r.label], joinF(r.tput))
	}
	ratio := func(a, b string) float64 { return med[a] / med[b] }
	fmt.Fprintf(tw, "\nratio\tvalue\ttarget\n")
	fmt.Fprintf(tw, "scopegate diverse / opa-minimal diverse\t%.2f\t>= 1.0\n", ratio("scopegate diverse", "opa-minimal diverse"))
	fmt.Fprintf(tw, "scopegate diverse / opa-bundle diverse\t%.2f\t\n", ratio("scopegate diverse", "opa-bundle diverse"))
	fmt.Fprintf(tw, "scopegate diverse / scopegate repeated\t%.2f\t>= 0.5\n", ratio("scopegate diverse", "scopegate repeated"))
	fmt.Fprintf(tw, "scopegate abac / scopegate diverse\t%.2f\t>= 0.5\n", ratio("scopegate abac", "scopegate diverse"))
	fmt.Fprintf(tw, "scopegate abac / opa-abac abac\t%.2f\t\n", ratio("scopegate abac", "opa-abac abac"))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Println("\nscopegate writes and fsyncs a hash-chained decision-log record for every answer (--decision-log-sync always unless -serve-args says otherwise); opa runs with decision logging off.")
	raw, _ := json.MarshalIndent(map[string]any{"medians": med, "config": map[string]any{
		"duration": cfg.duration.String(), "workers": cfg.workers, "rounds": cfg.rounds, "bodies": cfg.bodies, "serve_args": cfg.serveArgs}}, "", "  ")
	return os.WriteFile(filepath.Join(cfg.out, "realistic.json"), raw, 0o644)
}

// agree checks that two servers give every body the same allow and reason,
// and returns the fraction denied.
func agree(a, b *server, bodies [][]byte) (float64, error) {
	type verdict struct {
		Allow  bool
		Reason string
	}
	denied := 0
	for _, x := range bodies {
		var va verdict
		var vb struct{ Result verdict }
		if err := postJSON(a.base+a.decide, body(a, x), &va); err != nil {
			return 0, err
		}
		if err := postJSON(b.base+b.decide, body(b, x), &vb); err != nil {
			return 0, err
		}
		if va != vb.Result {
			return 0, fmt.Errorf("%s and %s disagree on %s: %+v, %+v", a.name, b.name, x, va, vb.Result)
		}
		if !va.Allow {
			denied++
		}
	}
	return float64(denied) / float64(len(bodies)), nil
}

// minimalBodies turns each question into the minimal check's input: the
// token's scopes and the scopes its action needs, as scopegate resolved
// them (route and named action included); and checks that the minimal
// check allows exactly what scopegate allows.
func minimalBodies(sg, opMin *server, bodies [][]byte) ([][]byte, error) {
	out := make([][]byte, len(bodies))
	for i, x := range bodies {
		var d struct {
			Allow         bool     `json:"allow"`
			RequiredAnyOf []string `json:"required_any_of"`
		}
		if err := postJSON(sg.base+sg.decide, x, &d); err != nil {
			return nil, err
		}
		var in struct {
			GrantedScopes []string `json:"granted_scopes"`
		}
		if err := json.Unmarshal(x, &in); err != nil {
			return nil, err
		}
		m, _ := json.Marshal(map[string]any{"granted_scopes": in.GrantedScopes, "any_of": d.RequiredAnyOf})
		out[i] = m
		var res struct {
			Result struct{ Allow bool } `json:"result"`
		}
		if err := postJSON(opMin.base+opMin.decide, body(opMin, m), &res); err != nil {
			return nil, err
		}
		if res.Result.Allow != d.Allow {
			return nil, fmt.Errorf("the minimal check and scopegate disagree on %s (%s): %v, %v", x, m, res.Result.Allow, d.Allow)
		}
	}
	return out, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func joinF(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(s, " ")
}
