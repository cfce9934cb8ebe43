package bundle_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/source"
)

// BenchmarkLoadReferenceBundle: the start-up cost of the reference bundle,
// from .tar.gz bytes to an engine ready to decide.
func BenchmarkLoadReferenceBundle(b *testing.B) {
	art := build(b, repoPolicies, nil)
	ctx := context.Background()
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			if _, err := bundle.ReadTarGz(art.TarGz, bundle.LoadOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read+compile", func(b *testing.B) {
		for b.Loop() {
			src, err := bundle.ReadTarGz(art.TarGz, bundle.LoadOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := engine.New(ctx, src); err != nil {
				b.Fatal(err)
			}
		}
	})
	kp := newKeys(b, "RS256")
	signed := build(b, repoPolicies, &bundle.SigningOptions{KeyFile: kp.private})
	vc, err := bundle.NewVerificationConfig(bundle.VerificationOptions{KeyFile: kp.public})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("read+verify+compile+activate", func(b *testing.B) {
		m := bundle.NewManager(bundle.ManagerOptions{})
		for b.Loop() {
			src, err := bundle.ReadTarGz(signed.TarGz, bundle.LoadOptions{Verification: vc})
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Activate(ctx, src, "bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSwap: the latency from a new bundle being available to
// SetEngine. "activate" starts from a read bundle (compile, smoke decision,
// swap); "poll-file" starts from the new .tar.gz on disk; "activate+tests"
// also runs the bundle's Rego tests (--bundle-run-tests).
func BenchmarkSwap(b *testing.B) {
	ctx := context.Background()
	arts := []*bundle.Artifact{build(b, repoPolicies, nil), build(b, copyPolicies(b, revisionB), nil)}
	srcs := make([]*source.Source, 2)
	for i, a := range arts {
		src, err := bundle.ReadTarGz(a.TarGz, bundle.LoadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		srcs[i] = src
	}
	b.Run("activate", func(b *testing.B) {
		m := bundle.NewManager(bundle.ManagerOptions{OnActivate: func(*engine.Engine) {}})
		i := 0
		for b.Loop() {
			if err := m.Activate(ctx, srcs[i%2], "bench"); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("poll-file", func(b *testing.B) {
		m := bundle.NewManager(bundle.ManagerOptions{})
		path := filepath.Join(b.TempDir(), "scopegate.tar.gz")
		w := watch(b, path, m, bundle.WatchOptions{})
		i := 0
		for b.Loop() {
			writeFile(b, path, arts[i%2].TarGz)
			if ok, err := w.Poll(ctx); !ok || err != nil {
				b.Fatal(ok, err)
			}
			i++
		}
	})
	b.Run("activate+tests", func(b *testing.B) {
		m := bundle.NewManager(bundle.ManagerOptions{RunTests: true})
		for b.Loop() {
			if err := m.Activate(ctx, srcs[0], "bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
