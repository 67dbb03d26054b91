package format

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// KeySize is the size of a master key in bytes.
const KeySize = 32

// KeyRing holds named 32-byte master keys and which one is active: new
// backups are encrypted under the active key, and older backups stay
// readable as long as their key is still in the ring.
//
// A KeyRing never prints its keys: String, GoString, Format and LogValue
// show the ids only, and the keys themselves are held in closures, which
// no reflection-based printer (fmt on a struct holding a KeyRing in an
// unexported field, %!s(...) for a bad verb, spew, go-cmp) can look into.
type KeyRing struct {
	active string
	ids    []string // in the order given
	keys   map[string]keyFunc
}

// keyFunc returns a master key.
type keyFunc func() *[KeySize]byte

// ParseKeyRing parses key entries of the form "id/<base64 of 32 bytes>"
// (standard or URL alphabet, padded or not) and the id of the active key.
// An id is 1 to 64 characters from [A-Za-z0-9._-]. With no entries and no
// active id it returns a nil ring and no error: no encryption.
//
// Errors name the entry by its index and id and never show key material.
func ParseKeyRing(entries []string, active string) (*KeyRing, error) {
	if len(entries) == 0 {
		if active != "" {
			return nil, fmt.Errorf("active key %s is set but the key ring is empty", safeID(active))
		}
		return nil, nil
	}
	k := &KeyRing{keys: make(map[string]keyFunc, len(entries))}
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if b, err := decodeKey(e); err == nil && len(b) == KeySize {
			return nil, fmt.Errorf("key %d: no id (the entry is a bare key); want id/base64-key", i)
		}
		id, enc, ok := strings.Cut(e, "/")
		if !ok {
			return nil, fmt.Errorf("key %d: malformed entry, want id/base64-key", i)
		}
		if err := checkKeyID(id); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		if _, dup := k.keys[id]; dup {
			return nil, fmt.Errorf("key %d (%q): duplicate id (key %d has it too)", i, id, slices.Index(k.ids, id))
		}
		b, err := decodeKey(enc)
		if err != nil {
			return nil, fmt.Errorf("key %d (%q): bad base64", i, id)
		}
		if len(b) != KeySize {
			return nil, fmt.Errorf("key %d (%q): key is %d bytes, want %d", i, id, len(b), KeySize)
		}
		key := new([KeySize]byte)
		copy(key[:], b)
		clear(b)
		k.keys[id] = func() *[KeySize]byte { return key }
		k.ids = append(k.ids, id)
	}
	if active == "" {
		return nil, fmt.Errorf("no active key set (key ring ids: %s)", strings.Join(k.ids, ", "))
	}
	if _, ok := k.keys[active]; !ok {
		return nil, fmt.Errorf("active key %s is not in the key ring (ids: %s)", safeID(active), strings.Join(k.ids, ", "))
	}
	k.active = active
	return k, nil
}

// decodeKey decodes standard or URL base64, padded or not.
func decodeKey(s string) ([]byte, error) {
	encs := []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding}
	if strings.HasSuffix(s, "=") {
		encs = []*base64.Encoding{base64.StdEncoding, base64.URLEncoding}
	}
	for _, enc := range encs {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("bad base64")
}

// checkKeyID reports whether id is a valid key id. The error does not
// quote the id: what fails the check may be key material.
func checkKeyID(id string) error {
	if id == "" {
		return errors.New("empty key id")
	}
	if len(id) > maxKeyIDLen {
		return fmt.Errorf("key id is %d characters, max %d", len(id), maxKeyIDLen)
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-'
		if !ok {
			return errors.New("key id has characters outside [A-Za-z0-9._-]")
		}
	}
	return nil
}

// safeID quotes an id for an error message, unless it is not a valid id
// or looks like a key put where an id belongs.
func safeID(id string) string {
	if checkKeyID(id) != nil {
		return "(invalid id, not shown)"
	}
	if b, err := decodeKey(id); err == nil && len(b) == KeySize {
		return "(looks like a key, not shown)"
	}
	return fmt.Sprintf("%q", id)
}

// ActiveID returns the id of the key new backups are encrypted under; ""
// for a nil ring.
func (k *KeyRing) ActiveID() string {
	if k == nil {
		return ""
	}
	return k.active
}

// IDs returns the ids of the keys in the ring, in the order given.
func (k *KeyRing) IDs() []string {
	if k == nil {
		return nil
	}
	return slices.Clone(k.ids)
}

// key returns the key named id.
func (k *KeyRing) key(id string) (*[KeySize]byte, bool) {
	if k == nil {
		return nil, false
	}
	key, ok := k.keys[id]
	if !ok {
		return nil, false
	}
	return key(), true
}

// String shows the active id and all ids, never a key.
func (k KeyRing) String() string {
	return fmt.Sprintf("KeyRing{active: %q, ids: %q}", k.active, k.ids)
}

// GoString shows the active id and all ids, never a key.
func (k KeyRing) GoString() string {
	return fmt.Sprintf("format.KeyRing{active: %q, ids: %#v}", k.active, k.ids)
}

// Format prints String (GoString for %#v) whatever the verb, so that no
// verb (%x, %d, %+v…) reaches the key bytes.
func (k KeyRing) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, k.GoString())
		return
	}
	_, _ = io.WriteString(f, k.String())
}

// LogValue logs the active id and all ids, never a key.
func (k KeyRing) LogValue() slog.Value {
	return slog.GroupValue(slog.String("active", k.active), slog.Any("ids", k.ids))
}
