package config

import "reflect"

// Changed lists the keys ("log.level") whose effective values differ
// between a and b, in the order of the reference. It compares values, not
// origins, so it never needs to show a secret to say that it changed.
func Changed(a, b *Config) []string {
	var out []string
	for _, f := range keys.fields {
		if !reflect.DeepEqual(a.value(f).Interface(), b.value(f).Interface()) {
			out = append(out, f.key)
		}
	}
	return out
}
