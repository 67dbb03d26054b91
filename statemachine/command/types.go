package command

import (
	"fmt"
	"math"
)

// Level is the consistency a read asks for.
type Level int

// The read levels, weakest first.
const (
	// LevelWeak reads on the node that believes it is the leader. It is the
	// default.
	LevelWeak Level = iota
	// LevelNone reads the local copy, which may be stale.
	LevelNone
	// LevelLinearizable confirms leadership with a quorum, then reads.
	LevelLinearizable
	// LevelStrong sends the read through the Raft log.
	LevelStrong
)

// ParseLevel maps a ?level= value to a Level. The empty string is weak.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "", "weak":
		return LevelWeak, nil
	case "none":
		return LevelNone, nil
	case "linearizable":
		return LevelLinearizable, nil
	case "strong":
		return LevelStrong, nil
	}
	return LevelWeak, fmt.Errorf("unknown read level %q (want none, weak, strong or linearizable)", s)
}

func (l Level) String() string {
	switch l {
	case LevelNone:
		return "none"
	case LevelWeak:
		return "weak"
	case LevelLinearizable:
		return "linearizable"
	case LevelStrong:
		return "strong"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Result is the outcome of one statement. Exactly one of Error, Rows
// (Columns set) or the write counters is meaningful.
type Result struct {
	// Columns and Types describe Values; Columns is nil for a statement
	// that yields no rows.
	Columns []string
	Types   []string
	// Values holds one slice per row; each value is nil, int64, float64,
	// string or []byte (Postgres mode adds bool, json.RawMessage for json
	// and jsonb, and []any for arrays).
	Values [][]any
	// LastInsertID and RowsAffected are set for writes.
	LastInsertID int64
	RowsAffected int64
	// Error is the SQL error of this statement, empty on success.
	Error string
	// Seconds is how long the statement took.
	Seconds float64
}

// NewParam builds a Param from a Go value: nil, bool, any integer type,
// float32/64, string or []byte.
func NewParam(name string, v any) (*Param, error) {
	p := &Param{Name: name}
	switch x := v.(type) {
	case nil:
	case bool:
		p.Value = &Param_B{B: x}
	case int:
		p.Value = &Param_I{I: int64(x)}
	case int32:
		p.Value = &Param_I{I: int64(x)}
	case int64:
		p.Value = &Param_I{I: x}
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("parameter %v does not fit a signed 64-bit integer", x)
		}
		p.Value = &Param_I{I: int64(x)}
	case float32:
		p.Value = &Param_D{D: float64(x)}
	case float64:
		p.Value = &Param_D{D: x}
	case string:
		p.Value = &Param_S{S: x}
	case []byte:
		p.Value = &Param_Y{Y: x}
	default:
		return nil, fmt.Errorf("unsupported parameter type %T", v)
	}
	return p, nil
}

// GoValue returns the parameter as a Go value for database/sql: nil, bool,
// int64, float64, string or []byte.
func (p *Param) GoValue() any {
	switch v := p.GetValue().(type) {
	case *Param_I:
		return v.I
	case *Param_D:
		return v.D
	case *Param_B:
		return v.B
	case *Param_Y:
		return v.Y
	case *Param_S:
		return v.S
	}
	return nil
}
