package decisionlog

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Direct canonical encoding.
//
// Building the generic value (generic) and encoding it (appendCanonical)
// costs most of a record, above all for structs such as the server's
// decision result, which generic can only convert by a JSON round trip.
// appendDirect writes the canonical form straight from the Go value. It must
// give exactly appendCanonical(generic(v)) — the meaning of a record is
// still "decode json.Marshal(ev)" — and falls back to that whenever a type
// does anything it does not model (json.Marshaler, encoding.TextMarshaler,
// embedded fields, ",string", omitzero, []byte, arrays, non-string map
// keys, invalid UTF-8 keys). TestAppendDirectMatchesGeneric keeps the two in
// step. Members that masking has to walk (input, and any member a configured
// pointer names) are still built as generic values.

// direct wraps a caller's value in a generic document (as *direct):
// appendCanonical encodes it with appendDirect, straight into the record.
type direct struct{ v any }

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	numberType        = reflect.TypeFor[json.Number]()
)

// appendDirect appends the canonical JSON of v.
func appendDirect(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, v), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case float64:
		return appendFloat(dst, v, 64)
	case []string:
		if v == nil {
			return append(dst, "null"...), nil
		}
		return appendStringArray(dst, v), nil
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendDirect(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		return appendDirectMap(dst, v, appendDirect)
	case *Canonical:
		return append(dst, v.Bytes()...), nil
	case Object:
		mw := maskWriter{plain: true}
		return mw.appendObject(dst, v, 0)
	case map[string]BundleInfo:
		return appendDirectMap(dst, v, func(dst []byte, b BundleInfo) ([]byte, error) {
			dst = append(dst, `{"revision":`...)
			return append(appendString(dst, b.Revision), '}'), nil
		})
	case map[string]string:
		return appendDirectMap(dst, v, func(dst []byte, s string) ([]byte, error) {
			return appendString(dst, s), nil
		})
	}
	return appendValue(dst, reflect.ValueOf(v))
}

// sortedKeys returns m's keys sorted, or false if one is not valid UTF-8
// (encoding/json would repair it and possibly merge keys).
func sortedKeys[V any](m map[string]V, keys []string) ([]string, bool) {
	for k := range m {
		if !utf8.ValidString(k) {
			return nil, false
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, true
}

// appendDirectMap appends m (null if nil) with its keys sorted, each value
// written by value. A key that is not valid UTF-8 sends m to appendGeneric,
// which repairs keys as encoding/json does.
func appendDirectMap[V any](dst []byte, m map[string]V, value func([]byte, V) ([]byte, error)) ([]byte, error) {
	if m == nil {
		return append(dst, "null"...), nil
	}
	var buf [16]string
	keys, ok := sortedKeys(m, buf[:0])
	if !ok {
		return appendGeneric(dst, m)
	}
	return appendKeyed(dst, keys, func(dst []byte, k string) ([]byte, error) { return value(dst, m[k]) })
}

func appendGeneric(dst []byte, v any) ([]byte, error) {
	g, err := generic(v)
	if err != nil {
		return nil, err
	}
	return appendCanonical(dst, g)
}

func appendFloat(dst []byte, f float64, bits int) ([]byte, error) {
	n, err := floatNumber(f, bits)
	if err != nil {
		return nil, err
	}
	return append(dst, n.(json.Number)...), nil
}

// appendValue is appendDirect for any value, by reflection.
func appendValue(dst []byte, rv reflect.Value) ([]byte, error) {
	if !rv.IsValid() {
		return append(dst, "null"...), nil
	}
	t := rv.Type()
	if customEncoding(t) {
		// Let encoding/json decide, with the addressability it would see.
		if rv.CanAddr() {
			return appendGeneric(dst, rv.Addr().Interface())
		}
		return appendGeneric(dst, rv.Interface())
	}
	switch t.Kind() {
	case reflect.String:
		if t == numberType {
			return appendGeneric(dst, rv.Interface()) // validated by encoding/json
		}
		return appendString(dst, rv.String()), nil
	case reflect.Bool:
		return strconv.AppendBool(dst, rv.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(dst, rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(dst, rv.Uint(), 10), nil
	case reflect.Float32:
		return appendFloat(dst, rv.Float(), 32)
	case reflect.Float64:
		return appendFloat(dst, rv.Float(), 64)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return append(dst, "null"...), nil
		}
		return appendValue(dst, rv.Elem())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			break // base64, or a named byte type's own encoding
		}
		if rv.IsNil() {
			return append(dst, "null"...), nil
		}
		if fastKind(t) == fastStrings {
			return appendStrings(dst, rv), nil
		}
		dst = append(dst, '[')
		for i := range rv.Len() {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendValue(dst, rv.Index(i)); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String || customEncoding(t.Key()) {
			break
		}
		if rv.IsNil() {
			return append(dst, "null"...), nil
		}
		keys := make([]string, 0, rv.Len())
		vals := make(map[string]reflect.Value, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			k := it.Key().String()
			if !utf8.ValidString(k) {
				return appendGeneric(dst, rv.Interface())
			}
			keys = append(keys, k)
			vals[k] = it.Value()
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendValue(dst, vals[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case reflect.Struct:
		plan := planFor(t)
		if plan == nil {
			break
		}
		dst = append(dst, '{')
		n := 0
		for _, f := range plan {
			fv := rv.Field(f.index)
			if f.omitEmpty && isEmptyValue(fv) {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			dst = append(dst, f.key...)
			switch f.fast {
			case fastString:
				dst = appendString(dst, fv.String())
			case fastBool:
				dst = strconv.AppendBool(dst, fv.Bool())
			case fastStrings:
				dst = appendStrings(dst, fv)
			default:
				var err error
				if dst, err = appendValue(dst, fv); err != nil {
					return nil, err
				}
			}
		}
		return append(dst, '}'), nil
	}
	if rv.CanAddr() {
		return appendGeneric(dst, rv.Addr().Interface())
	}
	return appendGeneric(dst, rv.Interface())
}

var customCache sync.Map // reflect.Type -> bool

// customEncoding reports whether encoding/json would call a method of t (or
// *t) to encode it.
func customEncoding(t reflect.Type) bool {
	if v, ok := customCache.Load(t); ok {
		return v.(bool)
	}
	pt := reflect.PointerTo(t)
	c := t.Implements(marshalerType) || t.Implements(textMarshalerType) ||
		pt.Implements(marshalerType) || pt.Implements(textMarshalerType)
	customCache.Store(t, c)
	return c
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

type fieldPlan struct {
	key       []byte // canonical "name":
	index     int
	omitEmpty bool
	fast      int // fastString, ...: a kind encoded without appendValue
}

const (
	fastNone = iota
	fastString
	fastBool
	fastStrings
)

// fastKind classifies the types appendValue encodes without looking further:
// string, bool and []string kinds with no methods of their own.
func fastKind(t reflect.Type) int {
	if customEncoding(t) {
		return fastNone
	}
	switch t.Kind() {
	case reflect.String:
		if t != numberType {
			return fastString
		}
	case reflect.Bool:
		return fastBool
	case reflect.Slice:
		if e := t.Elem(); e.Kind() == reflect.String && e != numberType && !customEncoding(e) {
			return fastStrings
		}
	}
	return fastNone
}

// appendStrings encodes a slice of a fastString kind; nil is null.
func appendStrings(dst []byte, rv reflect.Value) []byte {
	if rv.IsNil() {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i := range rv.Len() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, rv.Index(i).String())
	}
	return append(dst, ']')
}

var plans sync.Map // reflect.Type -> []fieldPlan (nil: not modelled)

// planFor returns the encoded fields of struct type t sorted by name, or nil
// if t uses a feature appendDirect leaves to encoding/json.
func planFor(t reflect.Type) []fieldPlan {
	if v, ok := plans.Load(t); ok {
		return v.([]fieldPlan)
	}
	plan := makePlan(t)
	plans.Store(t, plan)
	return plan
}

func makePlan(t reflect.Type) []fieldPlan {
	type named struct {
		name string
		fieldPlan
	}
	var fields []named
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			return nil // embedding: encoding/json's promotion rules
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		omit := false
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "":
			case "omitempty":
				omit = true
			default: // string, omitzero, and whatever comes next
				return nil
			}
		}
		if name == "" {
			name = f.Name
		} else if !validTag(name) {
			return nil
		}
		fields = append(fields, named{name, fieldPlan{index: i, omitEmpty: omit, fast: fastKind(f.Type)}})
	}
	slices.SortFunc(fields, func(a, b named) int { return strings.Compare(a.name, b.name) })
	plan := make([]fieldPlan, len(fields))
	for i, f := range fields {
		if i > 0 && fields[i-1].name == f.name {
			return nil // duplicate names: encoding/json drops both
		}
		f.key = append(appendString(nil, f.name), ':')
		plan[i] = f.fieldPlan
	}
	return plan
}

// validTag is encoding/json's isValidTag.
func validTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

// checkDirect is used by tests: appendDirect and the generic path must agree.
func checkDirect(v any) error {
	a, errA := appendDirect(nil, v)
	b, errB := appendGeneric(nil, v)
	if (errA == nil) != (errB == nil) {
		return fmt.Errorf("direct error %v, generic error %v", errA, errB)
	}
	if string(a) != string(b) {
		return fmt.Errorf("direct  %s\ngeneric %s", a, b)
	}
	return nil
}
