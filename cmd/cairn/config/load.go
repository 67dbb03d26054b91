package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Load builds the configuration from the built-in defaults, then the TOML
// file at path (none when path is ""), then the CAIRN_<SECTION>_<KEY>
// variables in env (KEY=VALUE entries, as os.Environ returns them), then
// fills in derived defaults (node.id from the hostname, advertise
// addresses, cluster.nodes) and validates the result.
//
// String values, in the file and in the environment, may reference ${VAR},
// ${VAR:-default} and $$ (see the package documentation); VAR is looked up
// in env.
//
// A file that cannot be read or is not valid TOML is an error and no
// Config. Anything else that is wrong (unknown keys and variables, values
// of the wrong type, failed checks) is reported all at once as a
// *ValidationError, together with the Config as far as it could be built.
func Load(path string, env []string) (*Config, error) {
	vars := envMap(env)
	lookup := func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
	l := &loader{c: newDefault(), lookup: lookup}

	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := l.file(path, data); err != nil {
			return nil, err
		}
	}
	l.env(vars)
	l.c.resolve(os.Hostname)
	l.problems = append(l.problems, l.c.check()...)
	if len(l.problems) == 0 {
		return l.c, nil
	}
	return l.c, l.c.validationError(l.problems, l.secrets...)
}

// loader carries the state of one Load.
type loader struct {
	c        *Config
	lookup   func(string) (string, bool)
	problems []Problem
	// secrets holds raw secret values seen on the way (before expansion,
	// or ones that failed to parse) so that no message can show them.
	secrets []string
}

func (l *loader) problem(key string, o Origin, format string, args ...any) {
	l.problems = append(l.problems, Problem{Key: key, Origin: o, Problem: fmt.Sprintf(format, args...)})
}

// newDefault returns a Config holding the `default` tags.
func newDefault() *Config {
	c := &Config{origins: map[string]Origin{}}
	for _, f := range keys.fields {
		if f.def == "" {
			continue
		}
		v, err := f.parse(f.def)
		if err != nil {
			continue // impossible: newSchema parsed every default
		}
		c.value(f).Set(v)
	}
	return c
}

// value returns the settable value of f in c.
func (c *Config) value(f *field) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByIndex(f.index)
}

func (l *loader) set(f *field, v reflect.Value, o Origin) {
	l.c.value(f).Set(v)
	l.c.origins[f.key] = o
}

// file applies a TOML file. Only a read or syntax error is returned; the
// rest are problems.
func (l *loader) file(path string, data []byte) error {
	raw := reflect.New(keys.raw)
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(raw.Interface())
	if err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	lines := keyLines(string(data))
	at := func(key string) Origin { return Origin{Source: SourceFile, Name: path, Line: lines[key]} }

	// Keys the raw struct has no place for. The decoder also matches keys
	// case-insensitively ("HTTP_ADDR"); those are unknown to us too.
	unknown := md.Undecoded()
	for _, k := range md.Keys() {
		name := k.String()
		if keys.byKey[name] == nil && !slices.Contains(keys.sections, name) &&
			!slices.ContainsFunc(unknown, func(u toml.Key) bool { return u.String() == name }) {
			unknown = append(unknown, k)
		}
	}
	slices.SortStableFunc(unknown, func(a, b toml.Key) int { return lineOrder(lines[a.String()], lines[b.String()]) })
	var reported []string
	for _, k := range unknown {
		key := k.String()
		if slices.ContainsFunc(reported, func(r string) bool { return strings.HasPrefix(key, r+".") }) {
			continue // inside an unknown table already reported
		}
		reported = append(reported, key)
		l.problem(key, at(key), "%s", unknownKey(key, md.Type(k...) == "Hash"))
	}

	for _, f := range keys.fields {
		rv := raw.Elem().FieldByIndex(f.raw).Addr().Interface().(*rawValue)
		if !rv.set || !md.IsDefined(f.section, f.name) {
			continue // absent, or spelt in another case: reported above
		}
		if f.redact != showAll {
			l.secrets = append(l.secrets, rawStrings(rv.v)...)
		}
		v, err := f.decode(rv.v, l.expander(f))
		if err != nil {
			l.problem(f.key, at(f.key), "%s", err)
			continue
		}
		l.set(f, v, at(f.key))
	}
	return nil
}

// lineOrder orders line numbers, unknown (0) last.
func lineOrder(a, b int) int {
	switch {
	case a == b:
		return 0
	case a == 0:
		return 1
	case b == 0:
		return -1
	}
	return a - b
}

// env applies the CAIRN_* variables, in the order of their names.
func (l *loader) env(vars map[string]string) {
	names := make([]string, 0, len(vars))
	for name := range vars {
		if strings.HasPrefix(name, "CAIRN_") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		raw := vars[name]
		o := Origin{Source: SourceEnv, Name: name}
		f := keys.byEnv[name]
		if f == nil {
			if !slices.Contains(IgnoredEnv, name) && !serviceLink.MatchString(name) {
				l.problem("", o, "%s", unknownEnv(name))
			}
			continue
		}
		if f.redact != showAll {
			l.secrets = append(l.secrets, raw)
		}
		s, err := l.expander(f)(raw)
		if err != nil {
			l.problem(f.key, o, "%s", err)
			continue
		}
		v, err := f.parse(s)
		if err != nil {
			l.problem(f.key, o, "%s", err)
			continue
		}
		l.set(f, v, o)
	}
}

// expander expands references in values of f, remembering what a secret
// expanded to.
func (l *loader) expander(f *field) expandFunc {
	return func(s string) (string, error) {
		v, err := expand(s, l.lookup)
		if err == nil && f.redact != showAll {
			l.secrets = append(l.secrets, v)
		}
		return v, err
	}
}

// rawStrings returns the strings in a raw TOML value.
func rawStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, rawStrings(e)...)
		}
		return out
	}
	return nil
}

// envMap turns KEY=VALUE entries into a map; a later entry wins. Entries
// without "=" are ignored.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// serviceLink matches the variables Kubernetes puts in every pod for each
// Service of its namespace (unless enableServiceLinks is false): a Service
// named "cairn" yields CAIRN_SERVICE_HOST, CAIRN_PORT_4001_TCP_ADDR and so
// on. They are not configuration, and must not stop a node from starting.
var serviceLink = regexp.MustCompile(`^CAIRN_([A-Z0-9_]+_)?(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// unknownKey describes an unknown key of the file, with a suggestion;
// table says whether its value is a table.
func unknownKey(key string, table bool) string {
	sections := "the sections are " + strings.Join(keys.sections, ", ")
	section, name, dotted := strings.Cut(key, ".")
	if !dotted {
		if !table {
			for _, f := range keys.fields {
				if strings.EqualFold(f.name, key) {
					return fmt.Sprintf("unknown key; did you mean %q, in section [%s]?", f.key, f.section)
				}
			}
			return "unknown key; every key belongs to a section: " + sections
		}
		if s := suggest(key, keys.sections); s != "" {
			return fmt.Sprintf("unknown section; did you mean [%s]?", s)
		}
		return "unknown section; " + sections
	}
	if !slices.Contains(keys.sections, section) {
		return "unknown key; " + sections
	}
	if s := suggest(name, keys.names(section)); s != "" {
		return fmt.Sprintf("unknown key; did you mean %q?", section+"."+s)
	}
	return fmt.Sprintf("unknown key in section [%s]", section)
}

// unknownEnv describes an unknown CAIRN_* variable, with a suggestion.
func unknownEnv(name string) string {
	for _, f := range keys.fields {
		if strings.EqualFold(name, f.env) {
			return fmt.Sprintf("unknown variable; did you mean %s? (names are upper-case)", f.env)
		}
	}
	rest := strings.TrimPrefix(name, "CAIRN_")
	for _, section := range keys.sections {
		prefix := strings.ToUpper(section) + "_"
		if !strings.HasPrefix(rest, prefix) {
			continue
		}
		key := strings.ToLower(strings.TrimPrefix(rest, prefix))
		if s := suggest(key, keys.names(section)); s != "" {
			return fmt.Sprintf("unknown variable; did you mean %s?", keys.byKey[section+"."+s].env)
		}
		return fmt.Sprintf("unknown variable: section %s has no key %q", section, key)
	}
	for _, f := range keys.fields {
		if editDistance(name, f.env) <= 1 {
			return fmt.Sprintf("unknown variable; did you mean %s?", f.env)
		}
	}
	section, _, _ := strings.Cut(rest, "_")
	return fmt.Sprintf("unknown variable: there is no section %q (the sections are %s)",
		strings.ToLower(section), strings.Join(keys.sections, ", "))
}

// suggest returns the candidate closest to s if it differs only in case or
// is close enough to be a likely typo, else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return c
		}
		if d := editDistance(s, c); d < bestD && d <= len(c)/3 {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
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

// keyLines maps each key defined in a TOML document to the line that
// defines it (first occurrence), for messages. It is a best-effort scan,
// not a parser: it runs only on documents the TOML parser accepted, skips
// multi-line strings and arrays, and a key it cannot place simply has no
// line.
func keyLines(src string) map[string]int {
	lines := map[string]int{}
	record := func(parts []string, n int) {
		for i := range parts {
			k := toml.Key(parts[:i+1]).String()
			if _, ok := lines[k]; !ok {
				lines[k] = n
			}
		}
	}
	var table []string
	var inString string // `"""` or `'''` while inside a multi-line string
	depth := 0          // open brackets of a multi-line array
	for i, line := range strings.Split(src, "\n") {
		n := i + 1
		s := strings.TrimSpace(line)
		switch {
		case inString != "":
			if strings.Count(s, inString)%2 == 1 {
				inString = ""
			}
		case depth > 0:
			depth += bracketDepth(s)
		case strings.HasPrefix(s, "["):
			header := strings.TrimPrefix(strings.TrimPrefix(s, "["), "[")
			parts, rest, ok := parseKeyPath(header)
			if ok && strings.HasPrefix(rest, "]") {
				table = parts
				record(table, n)
			}
		default:
			parts, rest, ok := parseKeyPath(s)
			if !ok || !strings.HasPrefix(rest, "=") {
				continue
			}
			record(append(slices.Clone(table), parts...), n)
			value := strings.TrimSpace(rest[1:])
			for _, q := range []string{`"""`, `'''`} {
				if strings.Count(value, q)%2 == 1 {
					inString = q
				}
			}
			if strings.HasPrefix(value, "[") {
				depth = bracketDepth(value)
			}
		}
	}
	return lines
}

// parseKeyPath reads a dotted TOML key (bare, "quoted" or 'literal' parts)
// at the start of s and returns its parts and the rest of s, trimmed.
func parseKeyPath(s string) (parts []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		switch {
		case s == "":
			return nil, "", false
		case s[0] == '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, "", false
			}
			part, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return nil, "", false
			}
			parts, s = append(parts, part), s[end+1:]
		case s[0] == '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, "", false
			}
			parts, s = append(parts, s[1:end+1]), s[end+2:]
		default:
			end := strings.IndexFunc(s, func(r rune) bool {
				return !(r == '_' || r == '-' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'))
			})
			if end == 0 {
				return nil, "", false
			}
			if end < 0 {
				end = len(s)
			}
			parts, s = append(parts, s[:end]), s[end:]
		}
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return parts, s, true
		}
		s = s[1:]
	}
}

// bracketDepth returns the number of "[" minus "]" in s outside strings and
// comments.
func bracketDepth(s string) int {
	d := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			return d
		case c == '[':
			d++
		case c == ']':
			d--
		}
	}
	return d
}
