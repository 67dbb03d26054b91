package config

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/crypto/bcrypt"
)

// permissionNames are the permissions an auth.users entry may list. The
// server parses them (server.NewUserSet); a test in cmd/cairn checks that
// both accept and refuse the same entries, with the same words.
var permissionNames = []string{"read", "write", "status", "backup", "admin", "all"}

// bcryptPrefixes mark a password given as a bcrypt hash.
var bcryptPrefixes = []string{"$2a$", "$2b$", "$2y$"}

// AuthUsers returns the entries of auth.users. A list given as one string
// (CAIRN_AUTH_USERS, or a string in the file) is split on commas and
// newlines, but the permissions of an entry are separated by commas too,
// so a piece that is just a permission name is put back at the end of the
// entry before it: "app:pw:read,write,ops:pw2:all" is two entries. A
// password given in such a string must not contain a comma (bcrypt hashes
// never do).
func (c *Config) AuthUsers() []string {
	var out []string
	for _, piece := range c.Auth.Users {
		if n := len(out); n > 0 && isPermissionName(strings.TrimSpace(piece)) {
			out[n-1] += "," + piece
			continue
		}
		out = append(out, piece)
	}
	return out
}

// isPermissionName reports whether s names a permission.
func isPermissionName(s string) bool {
	return slices.ContainsFunc(permissionNames, func(n string) bool { return strings.EqualFold(n, s) })
}

// checkUserEntry says what is wrong with an auth.users entry
// "name:password:perm,perm", or "". It returns the user name when the
// entry has that shape; the reason never holds the password.
func checkUserEntry(entry string) (name, reason string) {
	entry = strings.TrimSpace(entry)
	first, last := strings.IndexByte(entry, ':'), strings.LastIndexByte(entry, ':')
	if first < 0 || first == last {
		return "", `want "name:password:permissions"`
	}
	name, password, perms := entry[:first], entry[first+1:last], entry[last+1:]
	switch {
	case name == "":
		return "", "the user name is empty"
	case len(name) > 128:
		return "", "the user name is longer than 128 bytes"
	case strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "", "the user name contains a blank or control character"
	case password == "":
		return name, "the password is empty"
	}
	if slices.ContainsFunc(bcryptPrefixes, func(p string) bool { return strings.HasPrefix(password, p) }) {
		if _, err := bcrypt.Cost([]byte(password)); err != nil {
			return name, "the password starts like a bcrypt hash but is not a valid one"
		}
	}
	listed := false
	for p := range strings.SplitSeq(perms, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !isPermissionName(p) {
			return name, fmt.Sprintf("unknown permission %q (want %s)", p, strings.Join(permissionNames, ", "))
		}
		listed = true
	}
	if !listed {
		return name, fmt.Sprintf("no permissions: list some of %s after the last ':'", strings.Join(permissionNames, ", "))
	}
	return name, ""
}

// authUsers checks every auth.users entry, naming each bad one by its
// position (from 1) and user, never by its password.
func (v *validator) authUsers() {
	seen := map[string]bool{}
	for i, entry := range v.c.AuthUsers() {
		name, reason := checkUserEntry(entry)
		if reason == "" && seen[name] {
			reason = "the user is declared twice"
		}
		if reason == "" {
			seen[name] = true
		}
		switch {
		case reason == "":
		case name == "":
			v.add("auth.users", "entry %d: %s", i+1, reason)
		default:
			v.add("auth.users", "entry %d (user %q): %s", i+1, name, reason)
		}
	}
}
