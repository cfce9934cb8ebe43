package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/bundle"
)

// forgedBundle is a bundle signed with another key than the one a server
// trusts, whose data.json is padded to dataBytes (it compresses to almost
// nothing), with .signatures.json last in the archive so a reader must get
// through the data to find it.
func forgedBundle(t testing.TB, dataBytes int) (tgz string, trusted keyPair) {
	t.Helper()
	attacker, trusted := newKeys(t, "RS256"), newKeys(t, "RS256")
	art := build(t, repoPolicies, &bundle.SigningOptions{KeyFile: attacker.private})
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(art.Files))
	for name := range art.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	names = append(slices.DeleteFunc(names, func(n string) bool { return n == ".signatures.json" }), ".signatures.json")
	for _, name := range names {
		b := art.Files[name]
		if name == "data.json" {
			// Many small objects: what costs most to parse and hold.
			b = append(append([]byte(`{"pad":[`), bytes.Repeat([]byte(`{"a":[1,2]},`), dataBytes/12)...), `{}]}`...)
		}
		if err := tw.WriteHeader(&tar.Header{Name: "/" + name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	tgz = filepath.Join(t.TempDir(), "forged.tar.gz")
	if err := os.WriteFile(tgz, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return tgz, trusted
}

// TestForgedBundleRefusedCheaply: a bundle whose signature fails is refused
// at the verify stage without its content being parsed: refusing a 68 KB
// archive holding a 60 MB data.json allocates a few MiB, not gigabytes.
func TestForgedBundleRefusedCheaply(t *testing.T) {
	tgz, trusted := forgedBundle(t, 60<<20)
	fi, _ := os.Stat(tgz)
	opts := verifyWith(t, trusted, "RS256")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := bundle.LoadPath(tgz, opts)
	runtime.ReadMemStats(&after)
	if bundle.StageOf(err) != bundle.StageVerify {
		t.Fatalf("forged bundle: stage %q, %v", bundle.StageOf(err), err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("refused a %d KB forged archive (60 MB data.json) allocating %d MiB: %v", fi.Size()>>10, alloc>>20, err)
	if alloc > 100<<20 {
		t.Errorf("refusing the forged bundle allocated %d MiB (want < 100)", alloc>>20)
	}

	// The bytes read from any bundle are bounded, signed or not.
	small := bundle.LoadOptions{SizeLimit: 8 << 20}
	if _, err := bundle.LoadPath(tgz, small); bundle.StageOf(err) != bundle.StageRead || !strings.Contains(err.Error(), "over 8388608 bytes") {
		t.Errorf("an archive over the limit once decompressed: %v", err)
	}
}
