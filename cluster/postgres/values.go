package postgres

import (
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Layouts of the time types in JSON. timestamptz is an instant and gets
// RFC 3339 in UTC; timestamp has no zone, so it gets the same layout
// without one; date is a calendar day.
const (
	layoutTimestamptz = time.RFC3339Nano
	layoutTimestamp   = "2006-01-02T15:04:05.999999999"
	layoutDate        = time.DateOnly
)

// typeName is the PostgreSQL name of a column type ("int8", "_text" for a
// text array), or "oid:N" for a type pgx does not know (an enum, a
// domain or an extension's type).
func typeName(tm *pgtype.Map, oid uint32) string {
	if t, ok := tm.TypeForOID(oid); ok {
		return t.Name
	}
	return "oid:" + strconv.FormatUint(uint64(oid), 10)
}

// jsonValue converts a value decoded by pgx into one the HTTP layer writes
// to JSON without loss: nil, bool, int64, float64, string, []byte,
// json.RawMessage or []any of those. raw is the value as it came off the
// wire, used for json and jsonb so that their numbers keep every digit.
func jsonValue(v any, f pgconn.FieldDescription, raw []byte) any {
	if v == nil {
		return nil
	}
	switch f.DataTypeOID {
	case pgtype.JSONOID:
		return json.RawMessage(append([]byte(nil), raw...))
	case pgtype.JSONBOID:
		if f.Format == pgtype.BinaryFormatCode && len(raw) > 0 {
			raw = raw[1:] // jsonb's binary form starts with a version byte
		}
		return json.RawMessage(append([]byte(nil), raw...))
	}
	return convert(v, f.DataTypeOID)
}

// convert maps one decoded value (an array element too, with oid 0).
func convert(v any, oid uint32) any {
	switch x := v.(type) {
	case nil:
		return nil
	case bool, int64, float64, string:
		return x
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	case []byte:
		return x
	case time.Time:
		switch oid {
		case pgtype.DateOID:
			return x.Format(layoutDate)
		case pgtype.TimestampOID:
			return x.Format(layoutTimestamp)
		}
		return x.UTC().Format(layoutTimestamptz)
	case pgtype.Numeric:
		return numericString(x)
	case [16]byte: // uuid
		return uuidString(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = convert(e, 0)
		}
		return out
	case map[string]any:
		// A json value inside an array: pgx decoded it already.
		return marshalled(x)
	case fmt.Stringer:
		return x.String()
	case driver.Valuer:
		dv, err := x.Value()
		if err != nil {
			return fmt.Sprint(v)
		}
		return convert(dv, oid)
	}
	return marshalled(v)
}

// marshalled is v as JSON, or its printed form when it has none.
func marshalled(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return json.RawMessage(b)
}

// numericString writes a numeric exactly, as a decimal string ("NaN",
// "Infinity" and "-Infinity" included).
func numericString(n pgtype.Numeric) any {
	switch {
	case !n.Valid:
		return nil
	case n.NaN:
		return "NaN"
	case n.InfinityModifier == pgtype.Infinity:
		return "Infinity"
	case n.InfinityModifier == pgtype.NegativeInfinity:
		return "-Infinity"
	}
	digits := new(big.Int).Set(n.Int).String()
	neg := false
	if digits[0] == '-' {
		neg, digits = true, digits[1:]
	}
	exp := int(n.Exp)
	switch {
	case exp >= 0:
		for range exp {
			digits += "0"
		}
	default:
		point := len(digits) + exp
		for point <= 0 {
			digits = "0" + digits
			point++
		}
		digits = digits[:point] + "." + digits[point:]
	}
	if neg {
		digits = "-" + digits
	}
	return digits
}

// uuidString formats a uuid as 8-4-4-4-12 hex digits.
func uuidString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
