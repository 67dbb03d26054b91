package server

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/cairndb/cairn/statemachine/command"
)

// requestError is a mistake in the client's request. The handlers answer
// it with 400 and its message.
type requestError struct {
	msg string
}

func (e *requestError) Error() string { return e.msg }

// badRequestf returns a requestError with a formatted message.
func badRequestf(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// errNoStatements is returned for an empty statements array. rqlite
// answers it with 400 "no statements" as well.
var errNoStatements = &requestError{msg: "no statements"}

// decodeStatements reads a request body: a JSON array whose elements are
// either an SQL string or an array [sql, param...]. A parameter that is an
// object gives named parameters (sorted by name, so that the result does
// not depend on map order). The error is a *requestError for anything the
// client got wrong, and wraps the reader's error (such as
// *http.MaxBytesError) when reading failed.
func decodeStatements(r io.Reader) ([]*command.Statement, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()

	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return nil, badRequestf("empty request body: want a JSON array of statements")
	} else if err != nil {
		return nil, jsonError(dec, err)
	}
	if tok != json.Delim('[') {
		return nil, badRequestf("request body must be a JSON array of statements, not %s", describeToken(tok))
	}

	var stmts []*command.Statement
	for i := 0; dec.More(); i++ {
		stmt, err := decodeStatement(dec, i)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, stmt)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, jsonError(dec, err)
	}
	offset := dec.InputOffset()
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var se *json.SyntaxError
		if err == nil || errors.As(err, &se) {
			return nil, badRequestf("malformed JSON: unexpected data after the statements array at byte offset %d", offset)
		}
		return nil, jsonError(dec, err)
	}
	if len(stmts) == 0 {
		return nil, errNoStatements
	}
	return stmts, nil
}

// decodeStatement reads statement i, which must be a string or an array.
func decodeStatement(dec *json.Decoder, i int) (*command.Statement, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(dec, err)
	}
	switch t := tok.(type) {
	case string:
		return newStatement(i, t)
	case json.Delim:
		if t == '[' {
			return decodeParameterized(dec, i)
		}
	}
	return nil, badRequestf("statement %d: must be an SQL string or an array [sql, params...], not %s", i, describeToken(tok))
}

// decodeParameterized reads the rest of statement i after its opening '['.
func decodeParameterized(dec *json.Decoder, i int) (*command.Statement, error) {
	if !dec.More() {
		return nil, badRequestf("statement %d: empty array: want [sql, params...]", i)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(dec, err)
	}
	sql, ok := tok.(string)
	if !ok {
		return nil, badRequestf("statement %d: the first element must be the SQL string, not %s", i, describeToken(tok))
	}
	stmt, err := newStatement(i, sql)
	if err != nil {
		return nil, err
	}

	seen := make(map[string]bool)
	for j := 0; dec.More(); j++ {
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, jsonError(dec, err)
		}
		named, ok := v.(map[string]any)
		if !ok {
			p, err := newParam("", v)
			if err != nil {
				return nil, badRequestf("statement %d, parameter %d: %v", i, j, err)
			}
			stmt.Params = append(stmt.Params, p)
			continue
		}
		names := make([]string, 0, len(named))
		for name := range named {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			if name == "" {
				return nil, badRequestf("statement %d, parameter %d: a named parameter has an empty name", i, j)
			}
			if seen[name] {
				return nil, badRequestf("statement %d, parameter %q: given more than once", i, name)
			}
			seen[name] = true
			p, err := newParam(name, named[name])
			if err != nil {
				return nil, badRequestf("statement %d, parameter %q: %v", i, name, err)
			}
			stmt.Params = append(stmt.Params, p)
		}
	}
	if _, err := dec.Token(); err != nil { // the statement's closing ']'
		return nil, jsonError(dec, err)
	}
	return stmt, nil
}

// newStatement checks the SQL of statement i.
func newStatement(i int, sql string) (*command.Statement, error) {
	if strings.TrimSpace(sql) == "" {
		return nil, badRequestf("statement %d: the SQL is empty", i)
	}
	return &command.Statement{Sql: sql}, nil
}

// newParam converts one decoded JSON value (decoded with UseNumber) into a
// parameter. The error says what is wrong with the value, without position.
func newParam(name string, v any) (*command.Param, error) {
	p := &command.Param{Name: name}
	switch x := v.(type) {
	case nil:
		// SQL NULL: no value.
	case bool:
		p.Value = &command.Param_B{B: x}
	case string:
		if b, ok := parseHexLiteral(x); ok {
			p.Value = &command.Param_Y{Y: b}
		} else {
			p.Value = &command.Param_S{S: x}
		}
	case json.Number:
		switch n, err := parseNumber(x); {
		case err != nil:
			return nil, err
		case n.isInt:
			p.Value = &command.Param_I{I: n.i}
		default:
			p.Value = &command.Param_D{D: n.f}
		}
	case []any:
		b, err := parseByteArray(x)
		if err != nil {
			return nil, err
		}
		p.Value = &command.Param_Y{Y: b}
	case map[string]any:
		return nil, errors.New("an object is not a parameter value (objects are only allowed as the set of named parameters)")
	default:
		return nil, fmt.Errorf("unsupported value of type %T", v)
	}
	return p, nil
}

// number is a JSON number converted exactly: an int64 when it is written as
// an integer, a float64 otherwise.
type number struct {
	isInt bool
	i     int64
	f     float64
}

// parseNumber converts a JSON number without ever passing an integer
// through float64. An integer outside the int64 range is an error, not a
// rounded float.
func parseNumber(n json.Number) (number, error) {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		i, err := strconv.ParseInt(s, 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return number{}, fmt.Errorf("integer %s is outside the signed 64-bit range [%d, %d]", s, int64(math.MinInt64), int64(math.MaxInt64))
		} else if err != nil {
			return number{}, fmt.Errorf("invalid number %s", s)
		}
		return number{isInt: true, i: i}, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if math.IsInf(f, 0) {
			return number{}, fmt.Errorf("number %s is outside the range of a 64-bit float", s)
		}
		if !errors.Is(err, strconv.ErrRange) {
			return number{}, fmt.Errorf("invalid number %s", s)
		}
		// Underflow: ParseFloat returns the nearest float (0 or a
		// denormal), which is what SQLite would store too.
	}
	return number{f: f}, nil
}

// parseByteArray converts a JSON array of integers 0-255 into a BLOB, as
// rqlite does.
func parseByteArray(a []any) ([]byte, error) {
	b := make([]byte, len(a))
	for k, e := range a {
		n, ok := e.(json.Number)
		if !ok {
			return nil, fmt.Errorf("an array parameter is a BLOB and must hold integers 0-255, but element %d is %s", k, describeValue(e))
		}
		v, err := strconv.ParseUint(string(n), 10, 8)
		if err != nil {
			return nil, fmt.Errorf("an array parameter is a BLOB and must hold integers 0-255, but element %d is %s", k, n)
		}
		b[k] = byte(v)
	}
	return b, nil
}

// parseHexLiteral recognises a string in SQLite's BLOB literal form, x'…'
// or X'…' with an even number of hex digits, which rqlite binds as a BLOB.
// Anything else (a missing quote, odd length, a non-hex digit) stays text.
func parseHexLiteral(s string) ([]byte, bool) {
	if len(s) < 3 || (s[0] != 'x' && s[0] != 'X') || s[1] != '\'' || s[len(s)-1] != '\'' {
		return nil, false
	}
	b, err := hex.DecodeString(s[2 : len(s)-1])
	if err != nil {
		return nil, false
	}
	return b, true
}

// jsonError turns an error from the JSON decoder into a requestError that
// names the byte offset, or wraps a read error (such as
// *http.MaxBytesError) so the caller can tell it apart.
func jsonError(dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return badRequestf("malformed JSON at byte offset %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequestf("malformed JSON: unexpected end of input at byte offset %d", dec.InputOffset())
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return badRequestf("malformed JSON at byte offset %d: %v", te.Offset, te)
	}
	return fmt.Errorf("read request body: %w", err)
}

// describeToken names the kind of a JSON token for error messages.
func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			return "an array"
		case '{':
			return "an object"
		}
		return fmt.Sprintf("%q", string(t))
	case string:
		return "a string"
	}
	return describeValue(tok)
}

// describeValue names the kind of a decoded JSON value for error messages.
func describeValue(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
