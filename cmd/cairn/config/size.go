package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a number of bytes. A configuration gives it as an integer of
// bytes, or as a string with a unit: "10MB" (decimal, 10,000,000 bytes),
// "10MiB" (binary, 10,485,760 bytes), "1.5GiB", "512B".
type Size int64

// sizeUnits maps a lower-case unit to its number of bytes. Single letters
// ("k", "m") are left out on purpose: they are ambiguous between 1000 and
// 1024.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// ParseSize parses a size such as "1048576", "10MB", "10MiB" or "1.5 GiB".
// Units are case-insensitive.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("%q is not a size: it is negative", s)
	}
	end := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(t)
	}
	num, unit := t[:end], strings.TrimSpace(t[end:])
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%q is not a size: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
	}
	if num == "" {
		return 0, fmt.Errorf("%q is not a size: want a number of bytes, or a number and a unit such as 10MiB", s)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("%q is not a size: too large", s)
		}
		return Size(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: bad number %q", s, num)
	}
	b := math.Round(f * float64(mult))
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a size: too large", s)
	}
	return Size(b), nil
}

// String formats the size with the largest binary unit that divides it
// exactly ("10MiB"), else in bytes ("1500B"). ParseSize reads it back.
func (s Size) String() string {
	if s == 0 {
		return "0B"
	}
	for _, u := range []struct {
		name string
		n    Size
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s%u.n == 0 {
			return fmt.Sprintf("%d%s", s/u.n, u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(s))
}
