package config

import (
	"fmt"
	"strings"
)

// expand replaces variable references in s:
//
//	${VAR}          the value of VAR; an error when VAR is unset
//	${VAR:-default} the value of VAR, or default when VAR is unset or empty
//	$$              a literal $
//
// A $ followed by anything else is kept as it is, so values such as
// generated passwords need no escaping unless they contain "${" or "$$".
// The default is taken literally up to the first "}". Errors never quote s,
// which may be a secret.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ at byte %d", i+1)
			}
			ref := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(ref, ":-")
			if !validVarName(name) {
				return "", fmt.Errorf("bad variable reference at byte %d: want ${NAME} or ${NAME:-default}, NAME made of letters, digits and _", i+1)
			}
			v, ok := lookup(name)
			switch {
			case hasDef && v == "":
				v = def
			case !ok:
				return "", fmt.Errorf("variable %s is not set (write ${%s:-default} to make it optional)", name, name)
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), nil
}

func validVarName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, r := range name {
		if !(r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}
