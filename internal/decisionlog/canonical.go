package decisionlog

import (
	"bytes"
	"encoding/json"
)

// Canonical is a JSON value already in the canonical encoding of records.
// A caller that sends a value elsewhere as well logs it as a Canonical and
// encodes it once: the server answers /v1/decide with the bytes its record
// holds as result. A record copies a Canonical as it is; masking, which has
// to walk a value, decodes it first.
//
// The zero Canonical is null. Canonical values are made only by Encode, so
// a record never holds bytes the encoder did not write.
type Canonical struct {
	raw []byte
	mw  maskWriter // Encode's scratch for Objects
}

// Encode sets c to the canonical encoding of v (as a record would encode
// v), reusing c's storage. On error c is null.
func (c *Canonical) Encode(v any) error {
	raw, err := c.mw.appendPlain(c.raw[:0], v)
	if err != nil {
		c.raw = c.raw[:0]
		return err
	}
	c.raw = raw
	return nil
}

// Bytes returns the encoding, valid until the next Encode: "null" for the
// zero Canonical.
func (c *Canonical) Bytes() []byte {
	if c == nil || len(c.raw) == 0 {
		return []byte("null")
	}
	return c.raw
}

// generic decodes c for masking, as generic would have built the value c
// was encoded from.
func (c *Canonical) generic() (any, error) {
	dec := json.NewDecoder(bytes.NewReader(c.Bytes()))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// AppendString appends s as a JSON string, as records encode strings
// (invalid UTF-8 becomes U+FFFD), for callers writing JSON around a
// Canonical.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }
