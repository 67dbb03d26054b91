package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// The schema is derived once, by reflection, from Config's `toml` tags: the
// list of keys with their environment variables, Go types, defaults and
// redaction. Load, Validate, Redacted and MarshalJSON all walk it.

// redaction says how much of a value may be shown.
type redaction int

const (
	showAll    redaction = iota
	redactAll            // a Secret, or a field tagged `secret:"true"`
	redactPass           // a URL tagged `secret:"url"`: only its password
)

// field is one configuration key.
type field struct {
	section string // "node"
	name    string // "http_addr"
	key     string // "node.http_addr"
	env     string // "CAIRN_NODE_HTTP_ADDR"
	index   []int  // path of the value within Config
	raw     []int  // path of its rawValue within schema.raw
	typ     reflect.Type
	redact  redaction
	def     string // the `default` tag, parsed like an environment value
}

// schema is every key of Config, in declaration order.
type schema struct {
	sections []string
	fields   []*field
	byKey    map[string]*field
	byEnv    map[string]*field
	// raw mirrors Config with a rawValue at each key, for decoding the file.
	raw reflect.Type
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
	secretType   = reflect.TypeFor[Secret]()
	rawValueType = reflect.TypeFor[rawValue]()
)

// keys is Config's schema. A bad tag is a programming error caught by every
// test of this package, so it panics at init rather than at a user's start.
var keys = mustSchema(reflect.TypeFor[Config]())

func mustSchema(t reflect.Type) *schema {
	s, err := newSchema(t)
	if err != nil {
		panic("config: " + err.Error())
	}
	return s
}

func newSchema(t reflect.Type) (*schema, error) {
	s := &schema{byKey: map[string]*field{}, byEnv: map[string]*field{}}
	var rawSections []reflect.StructField
	for i := range t.NumField() {
		sf := t.Field(i)
		section := tagName(sf)
		if section == "" {
			continue
		}
		if sf.Type.Kind() != reflect.Struct {
			return nil, fmt.Errorf("section %s: %s is not a struct", section, sf.Type)
		}
		s.sections = append(s.sections, section)
		var rawKeys []reflect.StructField
		for j := range sf.Type.NumField() {
			kf := sf.Type.Field(j)
			name := tagName(kf)
			if name == "" {
				continue
			}
			f := &field{
				section: section,
				name:    name,
				key:     section + "." + name,
				env:     "CAIRN_" + strings.ToUpper(section+"_"+name),
				index:   []int{i, j},
				raw:     []int{len(rawSections), len(rawKeys)},
				typ:     kf.Type,
				def:     kf.Tag.Get("default"),
			}
			switch tag := kf.Tag.Get("secret"); {
			case tag == "url":
				f.redact = redactPass
			case tag == "true" || kf.Type == secretType ||
				(kf.Type.Kind() == reflect.Slice && kf.Type.Elem() == secretType):
				f.redact = redactAll
			case tag != "":
				return nil, fmt.Errorf("key %s: bad secret tag %q", f.key, tag)
			}
			if !supported(f.typ) {
				return nil, fmt.Errorf("key %s: unsupported type %s", f.key, f.typ)
			}
			if f.def != "" {
				if _, err := f.parse(f.def); err != nil {
					return nil, fmt.Errorf("key %s: default: %s", f.key, err)
				}
			}
			if s.byKey[f.key] != nil || s.byEnv[f.env] != nil {
				return nil, fmt.Errorf("key %s: declared twice", f.key)
			}
			s.fields = append(s.fields, f)
			s.byKey[f.key] = f
			s.byEnv[f.env] = f
			rawKeys = append(rawKeys, reflect.StructField{
				Name: fmt.Sprintf("K%d", len(rawKeys)),
				Type: rawValueType,
				Tag:  reflect.StructTag(fmt.Sprintf("toml:%q", name)),
			})
		}
		rawSections = append(rawSections, reflect.StructField{
			Name: fmt.Sprintf("S%d", len(rawSections)),
			Type: reflect.StructOf(rawKeys),
			Tag:  reflect.StructTag(fmt.Sprintf("toml:%q", section)),
		})
	}
	s.raw = reflect.StructOf(rawSections)
	return s, nil
}

// tagName returns the name in a field's `toml` tag, or "" when it has none.
func tagName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
	if name == "-" || !sf.IsExported() {
		return ""
	}
	return name
}

func supported(t reflect.Type) bool {
	if t == durationType || t == sizeType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// names returns the key names of a section ("http_addr", ...).
func (s *schema) names(section string) []string {
	var names []string
	for _, f := range s.fields {
		if f.section == section {
			names = append(names, f.name)
		}
	}
	return names
}
