package token

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/scopegate/scopegate/internal/jwks"
)

// FileIssuer is one issuer in a --token-config file.
type FileIssuer struct {
	Issuer     string   `yaml:"issuer"`
	Audience   string   `yaml:"audience"`
	JWKS       string   `yaml:"jwks"`        // a file (relative to the config file) or an https:// URL
	Typ        []string `yaml:"typ"`         // default DefaultTyps
	Leeway     string   `yaml:"leeway"`      // a Go duration; default 60s
	ScopeClaim string   `yaml:"scope_claim"` // default scope, else scp
}

type file struct {
	Issuers []FileIssuer `yaml:"issuers"`
}

// DefaultLeeway is an issuer's clock-skew allowance unless it says.
const DefaultLeeway = 60 * time.Second

// LoadFile reads a --token-config file: the issuers whose JWTs are
// accepted, each with its audience, keys, typ, leeway and scope claim.
// Every problem is reported, each as path:line. JWKS URLs are fetched
// with minRefresh between fetches (jwks.Remote), files read now.
func LoadFile(path string, minRefresh time.Duration) ([]*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token config: %w", err)
	}
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, yamlError(path, err)
	}
	lines := issuerLines(raw)
	lineOf := func(i int) int {
		if i < len(lines) {
			return lines[i]
		}
		return 0 // an entry issuerLines could not place (a YAML merge key)
	}
	var errs []error
	bad := func(i int, format string, args ...any) {
		line := lineOf(i)
		msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", `\n`) // one error, one line
		errs = append(errs, fmt.Errorf("%s:%d: issuers[%d]: %s", path, line, i, msg))
	}
	if len(f.Issuers) == 0 {
		return nil, fmt.Errorf("%s: no issuers", path)
	}
	seen := map[string]int{}
	var out []*Config
	for i, fi := range f.Issuers {
		c := &Config{Issuer: fi.Issuer, Audience: fi.Audience, Typs: fi.Typ, Leeway: DefaultLeeway, ScopeClaim: fi.ScopeClaim}
		if line, dup := seen[fi.Issuer]; dup {
			bad(i, "issuer %s is already configured at line %d: a token's iss must choose one", fi.Issuer, line)
		} else if fi.Issuer == "" {
			bad(i, "issuer is missing")
		} else {
			seen[fi.Issuer] = lineOf(i)
		}
		if fi.Audience == "" {
			bad(i, "audience is missing")
		}
		if fi.Leeway != "" {
			if d, err := time.ParseDuration(fi.Leeway); err != nil || d < 0 {
				bad(i, "leeway %q is not a duration such as 60s", fi.Leeway)
			} else {
				c.Leeway = d
			}
		}
		if len(fi.Typ) == 0 {
			c.Typs = DefaultTyps
		}
		if fi.JWKS == "" {
			bad(i, "jwks is missing: a JWKS file or the issuer's https:// JWKS URL")
		} else {
			where := fi.JWKS
			if !strings.Contains(where, "://") && !filepath.IsAbs(where) {
				where = filepath.Join(filepath.Dir(path), where)
			}
			keys, err := Keys(where, minRefresh)
			if err != nil {
				bad(i, "jwks: %v", err)
			}
			c.Keys = keys
		}
		out = append(out, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// yamlError gives each of a YAML decoding's errors its own line, as
// path:line: message.
func yamlError(path string, err error) error {
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		m = strings.ReplaceAll(m, "\n", `\n`) // a message may quote a multi-line value
		if n, rest, ok := strings.Cut(strings.TrimPrefix(m, "line "), ": "); ok && strings.HasPrefix(m, "line ") {
			errs[i] = fmt.Errorf("%s:%s: %s", path, n, rest)
		} else {
			errs[i] = fmt.Errorf("%s: %s", path, m)
		}
	}
	return errors.Join(errs...)
}

// Keys is a KeySource: a JWKS file, read now, or a URL fetched as needed.
func Keys(where string, minRefresh time.Duration) (KeySource, error) {
	if !strings.Contains(where, "://") {
		return LoadJWKS(where)
	}
	if minRefresh <= 0 {
		return nil, errors.New("the JWKS refresh interval must be positive")
	}
	return jwks.New(where, jwks.Options{MinRefresh: minRefresh, Validate: CheckKeys})
}

// issuerLines are the lines where the issuers' entries start.
func issuerLines(raw []byte) []int {
	var doc yaml.Node
	if yaml.Unmarshal(raw, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "issuers" {
			var out []int
			for _, n := range m.Content[i+1].Content {
				out = append(out, n.Line)
			}
			return out
		}
	}
	return nil
}
