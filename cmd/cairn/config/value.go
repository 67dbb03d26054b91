package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// rawValue captures a key's value from the TOML file as the parser produced
// it (string, int64, float64, bool, []any, map[string]any, time values), so
// that expansion and conversion happen afterwards and every bad value is
// reported, not just the first.
type rawValue struct {
	set bool
	v   any
}

// UnmarshalTOML implements toml.Unmarshaler.
func (r *rawValue) UnmarshalTOML(v any) error {
	r.set, r.v = true, v
	return nil
}

// expandFunc expands ${VAR} references in one string.
type expandFunc func(string) (string, error)

// decode converts a value from the TOML file to the field's type. Strings
// (and each string of an array) are expanded first; a string given for a
// non-string key is parsed as in the environment, so `"${TIMEOUT:-5s}"`
// works for a duration.
func (f *field) decode(v any, expand expandFunc) (reflect.Value, error) {
	if s, ok := v.(string); ok {
		s, err := expand(s)
		if err != nil {
			return reflect.Value{}, err
		}
		return f.parse(s)
	}
	if f.typ.Kind() == reflect.Slice {
		arr, ok := v.([]any)
		if !ok {
			return reflect.Value{}, fmt.Errorf("want %s, found %s", f.want(), f.tomlType(v))
		}
		out := reflect.MakeSlice(f.typ, len(arr), len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				return reflect.Value{}, fmt.Errorf("element %d is %s, not a string", i+1, f.tomlType(e))
			}
			s, err := expand(s)
			if err != nil {
				return reflect.Value{}, fmt.Errorf("element %d: %w", i+1, err)
			}
			out.Index(i).SetString(s)
		}
		return out, nil
	}

	switch v := v.(type) {
	case int64:
		out := reflect.New(f.typ).Elem()
		switch {
		case f.typ == durationType:
			// An integer duration is ambiguous (seconds? nanoseconds?).
		case f.typ.Kind() == reflect.String || f.typ == sizeType:
			return f.parse(strconv.FormatInt(v, 10))
		case out.CanInt() && !out.OverflowInt(v):
			out.SetInt(v)
			return out, nil
		case out.CanUint() && v >= 0 && !out.OverflowUint(uint64(v)):
			out.SetUint(uint64(v))
			return out, nil
		case out.CanInt() || out.CanUint():
			return reflect.Value{}, fmt.Errorf("%d is out of range for %s", v, f.want())
		}
	case bool:
		if f.typ.Kind() == reflect.Bool {
			return reflect.ValueOf(v).Convert(f.typ), nil
		}
	}
	return reflect.Value{}, fmt.Errorf("want %s, found %s", f.want(), f.tomlType(v))
}

// parse converts a string, from the environment, a `default` tag or an
// expanded TOML string, to the field's type. Lists are split on commas and
// newlines. The error quotes s unless the field is secret.
func (f *field) parse(s string) (reflect.Value, error) {
	out := reflect.New(f.typ).Elem()
	t := strings.TrimSpace(s)
	switch {
	case f.typ.Kind() == reflect.Slice:
		items := splitList(s)
		out = reflect.MakeSlice(f.typ, len(items), len(items))
		for i, item := range items {
			out.Index(i).SetString(item)
		}
	case f.typ.Kind() == reflect.String:
		out.SetString(s)
	case f.typ == durationType:
		d, err := time.ParseDuration(t)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("%s is not a duration (write it like \"5s\", \"1m30s\" or \"500ms\")", f.quote(s))
		}
		out.SetInt(int64(d))
	case f.typ == sizeType:
		n, err := ParseSize(t)
		if err != nil {
			if f.redact != showAll {
				return reflect.Value{}, fmt.Errorf("%s is not a size", f.quote(s))
			}
			return reflect.Value{}, err
		}
		out.SetInt(int64(n))
	case f.typ.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(t)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("%s is not a boolean (use true or false)", f.quote(s))
		}
		out.SetBool(b)
	case out.CanInt():
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || out.OverflowInt(n) {
			return reflect.Value{}, fmt.Errorf("%s is not %s", f.quote(s), f.want())
		}
		out.SetInt(n)
	case out.CanUint():
		n, err := strconv.ParseUint(t, 10, 64)
		if err != nil || out.OverflowUint(n) {
			return reflect.Value{}, fmt.Errorf("%s is not %s", f.quote(s), f.want())
		}
		out.SetUint(n)
	default:
		return reflect.Value{}, fmt.Errorf("unsupported type %s", f.typ)
	}
	return out, nil
}

// splitList splits an environment value into list entries: on commas and
// newlines, trimming blanks and dropping empty entries.
func splitList(s string) []string {
	items := []string{}
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// want describes the field's type for an error message.
func (f *field) want() string {
	switch {
	case f.typ == durationType:
		return `a duration string such as "5s"`
	case f.typ == sizeType:
		return `a size (bytes, or a string such as "10MiB")`
	case f.typ.Kind() == reflect.Slice:
		return "an array of strings"
	case f.typ.Kind() == reflect.String:
		return "a string"
	case f.typ.Kind() == reflect.Bool:
		return "a boolean"
	case reflect.New(f.typ).Elem().CanUint():
		return "a non-negative integer"
	default:
		return "an integer"
	}
}

// tomlType describes a TOML value for an error message, with its value
// unless the field is secret: `integer 5`, `string "x"`, "an array".
func (f *field) tomlType(v any) string {
	var kind, article string
	switch v.(type) {
	case string:
		kind, article = "string", "a"
	case int64:
		kind, article = "integer", "an"
	case float64:
		kind, article = "float", "a"
	case bool:
		kind, article = "boolean", "a"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date/time"
	}
	switch {
	case f.redact != showAll:
		return article + " " + kind
	case kind == "string":
		return fmt.Sprintf("string %q", v)
	default:
		return fmt.Sprintf("%s %v", kind, v)
	}
}

// quote quotes a value for an error message, or hides it if it is secret.
func (f *field) quote(s string) string {
	if f.redact != showAll {
		return "the value"
	}
	return strconv.Quote(s)
}
