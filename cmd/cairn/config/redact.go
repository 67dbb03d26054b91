package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Redacted returns the effective configuration as TOML, with secrets
// redacted and the origin of each value as a comment:
//
//	[node]
//	id = "3"                     # default: from hostname "cairn-2"
//	http_addr = "0.0.0.0:4001"   # env CAIRN_NODE_HTTP_ADDR
//
// A secret shows as "[redacted]" when set and "" when not; a URL shows
// without its password. The text loads back as a configuration file.
func (c *Config) Redacted() string {
	scrub := c.scrubber()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for i, section := range keys.sections {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "[%s]\n", section)
		for _, f := range keys.fields {
			if f.section != section {
				continue
			}
			// A long value (a list) is left out of the alignment of the
			// comments: a line without a tab ends a tabwriter column.
			v, sep := tomlValue(c.shown(f, scrub)), "\t"
			if len(v) > maxAligned {
				sep = "  "
			}
			fmt.Fprintf(tw, "%s = %s%s# %s\n", f.name, v, sep, c.Origin(f.key))
		}
	}
	tw.Flush()
	return b.String()
}

// maxAligned is the longest value whose comment Redacted aligns.
const maxAligned = 60

// String returns Redacted. It has a value receiver so that printing a
// Config, not only a *Config, redacts too.
func (c Config) String() string { return c.Redacted() }

// GoString returns Redacted, so that %#v redacts too.
func (c Config) GoString() string { return c.Redacted() }

// MarshalJSON encodes the effective configuration as
// {"node": {"id": "3", ...}, ...}, with secrets redacted as in Redacted.
// Durations are strings ("5s"), sizes numbers of bytes.
func (c Config) MarshalJSON() ([]byte, error) {
	scrub := c.scrubber()
	var b bytes.Buffer
	b.WriteByte('{')
	for i, section := range keys.sections {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:{", section)
		first := true
		for _, f := range keys.fields {
			if f.section != section {
				continue
			}
			v := c.shown(f, scrub)
			switch x := v.(type) {
			case time.Duration:
				v = formatDuration(x)
			case Size:
				v = int64(x)
			}
			js, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("encode %s: %w", f.key, err)
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			fmt.Fprintf(&b, "%q:%s", f.name, js)
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// shown returns the value of f in c as it may be shown: a string, []string,
// bool, integer, time.Duration or Size, with secrets redacted. scrub hides
// secrets that were also given as the value of another key.
func (c *Config) shown(f *field, scrub *strings.Replacer) any {
	v := c.value(f)
	hide := func(s string) string {
		switch {
		case s == "":
			return ""
		case f.redact == redactAll:
			return redactedMark
		case f.redact == redactPass:
			return redactURL(s)
		}
		return scrub.Replace(s)
	}
	switch {
	case f.typ == durationType:
		return time.Duration(v.Int())
	case f.typ == sizeType:
		return Size(v.Int())
	case v.Kind() == reflect.Slice:
		out := make([]string, v.Len())
		for i := range out {
			out[i] = hide(v.Index(i).String())
		}
		return out
	case v.Kind() == reflect.String:
		return hide(v.String())
	case v.CanInt():
		return v.Int()
	case v.CanUint():
		return v.Uint()
	case v.Kind() == reflect.Bool:
		return v.Bool()
	}
	return fmt.Sprint(v.Interface()) // unreachable: newSchema checks types
}

// tomlValue formats a value from shown in TOML syntax.
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return tomlQuote(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = tomlQuote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case time.Duration:
		return tomlQuote(formatDuration(v))
	case Size:
		return tomlQuote(v.String())
	}
	return fmt.Sprint(v)
}

// tomlQuote quotes s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// formatDuration is time.Duration.String without trailing zero units:
// "1m" rather than "1m0s", "2h" rather than "2h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// passwordParams are query parameters that carry a password in a
// PostgreSQL URL.
var passwordParams = []string{"password", "sslpassword"}

// redactURL returns s with the password of its user info and of its query
// replaced by "[redacted]"; all of s when it is not a valid URL with a
// scheme.
func redactURL(s string) string {
	const placeholder = "__cairn_redacted__"
	u, err := url.Parse(s)
	if err != nil || !strings.Contains(s, "://") {
		return redactedMark // not a URL: "host=h password=p" would show all
	}
	changed := false
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), placeholder)
		changed = true
	}
	if q := u.Query(); slices.ContainsFunc(passwordParams, q.Has) {
		for _, p := range passwordParams {
			if q.Has(p) {
				q.Set(p, placeholder)
			}
		}
		u.RawQuery = q.Encode()
		changed = true
	}
	if !changed {
		return s // u.String() may differ from s: "sqlite://" becomes "sqlite:"
	}
	return strings.ReplaceAll(u.String(), placeholder, redactedMark)
}

// minScrubLen is the shortest secret scrubber hides in text. Shorter ones
// would mangle ordinary words, and messages never quote secrets anyway:
// scrubbing is the second line of defence.
const minScrubLen = 8

// scrubber returns a replacer that hides, in any text, every secret value
// of c and every extra string (raw secrets seen while loading), and the
// passwords of those that are URLs.
func (c *Config) scrubber(extra ...string) *strings.Replacer {
	secrets := slices.Clone(extra)
	for _, f := range keys.fields {
		if f.redact == showAll {
			continue
		}
		switch v := c.value(f); v.Kind() {
		case reflect.String:
			secrets = append(secrets, v.String())
		case reflect.Slice:
			for i := range v.Len() {
				secrets = append(secrets, v.Index(i).String())
			}
		}
	}
	var olds []string
	for _, s := range secrets {
		olds = append(olds, s)
		if u, err := url.Parse(s); err == nil && strings.Contains(s, "://") {
			if pw, ok := u.User.Password(); ok {
				olds = append(olds, pw)
			}
			for _, p := range passwordParams {
				olds = append(olds, u.Query()[p]...)
			}
		}
	}
	// Longest first: the replacer tries the old strings in argument order.
	slices.SortFunc(olds, func(a, b string) int { return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b)) })
	var pairs []string
	for _, s := range slices.Compact(olds) {
		if len(s) >= minScrubLen {
			pairs = append(pairs, s, redactedMark)
		}
	}
	return strings.NewReplacer(pairs...)
}
