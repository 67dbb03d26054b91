package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cairndb/cairn/statemachine/command"
)

// p builds a parameter for expectations; v is nil, bool, int64, float64,
// string or []byte.
func p(name string, v any) *command.Param {
	param, err := command.NewParam(name, v)
	if err != nil {
		panic(err)
	}
	return param
}

// stmt builds a statement for expectations.
func stmt(sql string, params ...*command.Param) *command.Statement {
	return &command.Statement{Sql: sql, Params: params}
}

// paramString renders a parameter exactly, for comparisons: floats by their
// bits, so that -0 and 0 differ.
func paramString(pr *command.Param) string {
	var v string
	switch x := pr.GetValue().(type) {
	case nil:
		v = "null"
	case *command.Param_I:
		v = "int:" + strconv.FormatInt(x.I, 10)
	case *command.Param_D:
		v = fmt.Sprintf("float:%x", math.Float64bits(x.D))
	case *command.Param_B:
		v = "bool:" + strconv.FormatBool(x.B)
	case *command.Param_S:
		v = "text:" + strconv.Quote(x.S)
	case *command.Param_Y:
		v = fmt.Sprintf("blob:%x", x.Y)
	default:
		v = fmt.Sprintf("unknown:%T", x)
	}
	return strconv.Quote(pr.GetName()) + "=" + v
}

// statementsString renders statements exactly, for comparisons.
func statementsString(stmts []*command.Statement) string {
	var b strings.Builder
	for i, s := range stmts {
		fmt.Fprintf(&b, "%d: %q", i, s.GetSql())
		for _, pr := range s.GetParams() {
			b.WriteString(" " + paramString(pr))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestServer_DecodeStatements(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want []*command.Statement
	}{
		{"SingleString", `["SELECT 1"]`, []*command.Statement{stmt("SELECT 1")}},
		{"SeveralStrings", ` [ "CREATE TABLE t (x)" , "INSERT INTO t VALUES(1)" ] `,
			[]*command.Statement{stmt("CREATE TABLE t (x)"), stmt("INSERT INTO t VALUES(1)")}},
		{"ArrayWithoutParams", `[["SELECT 1"]]`, []*command.Statement{stmt("SELECT 1")}},
		{"MixedForms", `["SELECT 1", ["SELECT ?", 2]]`,
			[]*command.Statement{stmt("SELECT 1"), stmt("SELECT ?", p("", int64(2)))}},
		{"Positional", `[["INSERT INTO foo(name, age) VALUES(?, ?)", "fiona", 20]]`,
			[]*command.Statement{stmt("INSERT INTO foo(name, age) VALUES(?, ?)", p("", "fiona"), p("", int64(20)))}},
		{"NamedSortedByName", `[["INSERT INTO foo(name, age) VALUES(:name, :age)", {"name": "fiona", "age": 20}]]`,
			[]*command.Statement{stmt("INSERT INTO foo(name, age) VALUES(:name, :age)", p("age", int64(20)), p("name", "fiona"))}},
		{"PositionalThenNamed", `[["SELECT ?, :a, :b", 1, {"b": 2}, {"a": 3}]]`,
			[]*command.Statement{stmt("SELECT ?, :a, :b", p("", int64(1)), p("b", int64(2)), p("a", int64(3)))}},
		{"MixedTypes", `[["SELECT ?,?,?,?,?,?,?,?,?", null, true, false, 1.5, -3, "x", 1e3, 0.1, -0]]`,
			[]*command.Statement{stmt("SELECT ?,?,?,?,?,?,?,?,?",
				p("", nil), p("", true), p("", false), p("", 1.5), p("", int64(-3)),
				p("", "x"), p("", 1000.0), p("", 0.1), p("", int64(0)))}},
		{"IntegersStayExact", `[["SELECT ?,?,?,?", 9007199254740993, 9223372036854775807, -9223372036854775808, 12345678901234567]]`,
			[]*command.Statement{stmt("SELECT ?,?,?,?",
				p("", int64(9007199254740993)), p("", int64(math.MaxInt64)), p("", int64(math.MinInt64)), p("", int64(12345678901234567)))}},
		{"IntegerWrittenAsFloat", `[["SELECT ?,?", 2.0, 2e0]]`,
			[]*command.Statement{stmt("SELECT ?,?", p("", 2.0), p("", 2.0))}},
		{"FloatUnderflowIsZero", `[["SELECT ?", 1e-400]]`,
			[]*command.Statement{stmt("SELECT ?", p("", 0.0))}},
		{"BlobArray", `[["INSERT INTO t VALUES(?)", [1, 2, 255, 0]]]`,
			[]*command.Statement{stmt("INSERT INTO t VALUES(?)", p("", []byte{1, 2, 255, 0}))}},
		{"EmptyBlobArray", `[["INSERT INTO t VALUES(?)", []]]`,
			[]*command.Statement{stmt("INSERT INTO t VALUES(?)", p("", []byte{}))}},
		{"NamedBlob", `[["INSERT INTO t VALUES(:data)", {"data": [222, 173]}]]`,
			[]*command.Statement{stmt("INSERT INTO t VALUES(:data)", p("data", []byte{0xde, 0xad}))}},
		{"HexLiteralBlob", `[["SELECT ?,?,?", "x'0102ff'", "X'AB'", "x''"]]`,
			[]*command.Statement{stmt("SELECT ?,?,?", p("", []byte{1, 2, 255}), p("", []byte{0xab}), p("", []byte{}))}},
		{"NotHexLiteralStaysText", `[["SELECT ?,?,?,?,?", "x'0102", "x'zz'", "x'012'", "y'01'", "x'"]]`,
			[]*command.Statement{stmt("SELECT ?,?,?,?,?", p("", "x'0102"), p("", "x'zz'"), p("", "x'012'"), p("", "y'01'"), p("", "x'"))}},
		{"Unicode", `[["SELECT ?", "\u00e9\ud83d\ude00 ok"]]`,
			[]*command.Statement{stmt("SELECT ?", p("", "é😀 ok"))}},
		{"InvalidUTF8Replaced", "[[\"SELECT ?\", \"a\xffb\"]]",
			[]*command.Statement{stmt("SELECT ?", p("", "a\uFFFDb"))}},
		{"NullNamed", `[["SELECT :a", {"a": null}]]`,
			[]*command.Statement{stmt("SELECT :a", p("a", nil))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeStatements(strings.NewReader(tc.body))
			if err != nil {
				t.Fatalf("decode %s: %v", tc.body, err)
			}
			if g, w := statementsString(got), statementsString(tc.want); g != w {
				t.Fatalf("decode %s:\n got %s\nwant %s", tc.body, g, w)
			}
		})
	}
}

func TestServer_DecodeStatementsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want string // a substring of the error
	}{
		{"EmptyBody", ``, "empty request body"},
		{"BlankBody", " \n\t", "empty request body"},
		{"Object", `{"q": "SELECT 1"}`, "must be a JSON array of statements, not an object"},
		{"String", `"SELECT 1"`, "must be a JSON array of statements, not a string"},
		{"Number", `42`, "not a number"},
		{"EmptyArray", `[]`, "no statements"},
		{"NumberStatement", `["SELECT 1", 1]`, "statement 1: must be an SQL string or an array [sql, params...], not a number"},
		{"ObjectStatement", `[{"sql": "SELECT 1"}]`, "statement 0: must be an SQL string or an array [sql, params...], not an object"},
		{"NullStatement", `[null]`, "statement 0: must be an SQL string or an array [sql, params...], not null"},
		{"EmptyStatementArray", `[[]]`, "statement 0: empty array"},
		{"SQLNotString", `[[1, "x"]]`, "statement 0: the first element must be the SQL string, not a number"},
		{"SQLIsArray", `[[["SELECT 1"]]]`, "statement 0: the first element must be the SQL string, not an array"},
		{"EmptySQL", `[""]`, "statement 0: the SQL is empty"},
		{"BlankSQL", `["SELECT 1", ["  \n"]]`, "statement 1: the SQL is empty"},
		{"NestedObjectNamed", `[["SELECT :a", {"a": {"b": 1}}]]`, `statement 0, parameter "a": an object is not a parameter value`},
		{"BlobWithObject", `[["SELECT ?", 1, [1, {"x": 1}]]]`, "statement 0, parameter 1: an array parameter is a BLOB and must hold integers 0-255, but element 1 is an object"},
		{"BlobWithString", `[["SELECT ?", ["a"]]]`, "element 0 is a string"},
		{"BlobWithNested", `[["SELECT ?", [[1]]]]`, "element 0 is an array"},
		{"BlobTooBig", `[["SELECT ?", [1, 256]]]`, "element 1 is 256"},
		{"BlobNegative", `[["SELECT ?", [-1]]]`, "element 0 is -1"},
		{"BlobFraction", `[["SELECT ?", [1.5]]]`, "element 0 is 1.5"},
		{"IntegerTooBig", `[["SELECT ?", 1, 99999999999999999999]]`, "statement 0, parameter 1: integer 99999999999999999999 is outside the signed 64-bit range"},
		{"MaxInt64PlusOne", `[["SELECT ?", 9223372036854775808]]`, "integer 9223372036854775808 is outside the signed 64-bit range"},
		{"MinInt64MinusOne", `["SELECT 1", ["SELECT ?", -9223372036854775809]]`, "statement 1, parameter 0: integer -9223372036854775809 is outside"},
		{"NamedIntegerTooBig", `[["SELECT :n", {"n": 18446744073709551616}]]`, `statement 0, parameter "n": integer 18446744073709551616`},
		{"FloatTooBig", `[["SELECT ?", 1e400]]`, "number 1e400 is outside the range of a 64-bit float"},
		{"EmptyName", `["SELECT 1", ["SELECT :a", {"": 1}]]`, "statement 1, parameter 0: a named parameter has an empty name"},
		{"DuplicateName", `[["SELECT :a", {"a": 1}, {"a": 2}]]`, `statement 0, parameter "a": given more than once`},
		{"Unterminated", `["SELECT 1"`, "malformed JSON: unexpected end of input"},
		{"UnterminatedParams", `[["SELECT ?", 1`, "malformed JSON"},
		{"TrailingComma", `["SELECT 1",]`, "malformed JSON at byte offset"},
		{"BadToken", `[x]`, "malformed JSON at byte offset 1: invalid character 'x'"},
		{"BadParamToken", `[["SELECT ?", tru]]`, "malformed JSON at byte offset"},
		{"TrailingData", `["SELECT 1"] ["SELECT 2"]`, "unexpected data after the statements array at byte offset 12"},
		{"TrailingGarbage", `["SELECT 1"]x`, "unexpected data after the statements array"},
		{"DeepNesting", `[["SELECT ?", ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `]]`, "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stmts, err := decodeStatements(strings.NewReader(tc.body))
			if err == nil {
				t.Fatalf("decode %.80s succeeded: %s", tc.body, statementsString(stmts))
			}
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a requestError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// encodeStatementsJSON writes statements back as a request body in a form
// decodeStatements reads as the same statements: floats always with an
// exponent, BLOBs as byte arrays, each named parameter in its own object.
func encodeStatementsJSON(stmts []*command.Statement) []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i, s := range stmts {
		if i > 0 {
			b.WriteString(",")
		}
		sql, _ := json.Marshal(s.GetSql())
		if len(s.GetParams()) == 0 {
			b.Write(sql)
			continue
		}
		b.WriteString("[")
		b.Write(sql)
		for _, pr := range s.GetParams() {
			b.WriteString(",")
			var v []byte
			switch x := pr.GetValue().(type) {
			case nil:
				v = []byte("null")
			case *command.Param_I:
				v = strconv.AppendInt(nil, x.I, 10)
			case *command.Param_D:
				v = strconv.AppendFloat(nil, x.D, 'e', -1, 64)
			case *command.Param_B:
				v = strconv.AppendBool(nil, x.B)
			case *command.Param_S:
				v, _ = json.Marshal(x.S)
			case *command.Param_Y:
				v, _ = byteArray(x.Y).MarshalJSON()
			}
			if pr.GetName() != "" {
				name, _ := json.Marshal(pr.GetName())
				v = fmt.Appendf(nil, "{%s:%s}", name, v)
			}
			b.Write(v)
		}
		b.WriteString("]")
	}
	b.WriteString("]")
	return b.Bytes()
}

// checkStatements fails unless every statement and parameter is one the
// backend can take: non-blank valid UTF-8 SQL, named parameters with a
// name, finite floats, text that is valid UTF-8 and not a hex literal.
func checkStatements(t *testing.T, stmts []*command.Statement) {
	t.Helper()
	if len(stmts) == 0 {
		t.Fatal("no statements and no error")
	}
	for i, s := range stmts {
		if strings.TrimSpace(s.GetSql()) == "" || !utf8.ValidString(s.GetSql()) {
			t.Fatalf("statement %d: bad SQL %q", i, s.GetSql())
		}
		for j, pr := range s.GetParams() {
			if !utf8.ValidString(pr.GetName()) {
				t.Fatalf("statement %d, parameter %d: invalid UTF-8 name", i, j)
			}
			switch x := pr.GetValue().(type) {
			case nil, *command.Param_I, *command.Param_B, *command.Param_Y:
			case *command.Param_D:
				if math.IsNaN(x.D) || math.IsInf(x.D, 0) {
					t.Fatalf("statement %d, parameter %d: non-finite float %v", i, j, x.D)
				}
			case *command.Param_S:
				if !utf8.ValidString(x.S) {
					t.Fatalf("statement %d, parameter %d: invalid UTF-8 text", i, j)
				}
				if _, ok := parseHexLiteral(x.S); ok {
					t.Fatalf("statement %d, parameter %d: hex literal %q kept as text", i, j, x.S)
				}
			default:
				t.Fatalf("statement %d, parameter %d: unexpected value %T", i, j, x)
			}
		}
	}
}

func FuzzDecodeStatements(f *testing.F) {
	for _, seed := range []string{
		`["SELECT 1"]`,
		`["CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO foo(name) VALUES('fiona')"]`,
		`[["INSERT INTO foo(name, age) VALUES(?, ?)", "fiona", 20]]`,
		`[["SELECT * FROM foo WHERE name=:name AND age=:age", {"name": "fiona", "age": 20}]]`,
		`[["SELECT ?,?,?,?,?,?", null, true, 1.5, -3, "x", 1e3]]`,
		`[["SELECT ?,?,?", 9007199254740993, 9223372036854775807, -9223372036854775808]]`,
		`[["SELECT ?", 99999999999999999999]]`,
		`[["SELECT ?", 1e400]]`,
		`[["INSERT INTO t VALUES(?)", [1, 2, 255]]]`,
		`[["INSERT INTO t VALUES(?)", [256]]]`,
		`[["SELECT ?,?", "x'0102ff'", "x'0102"]]`,
		`[["SELECT :a", {"a": {"b": 1}}]]`,
		`[["SELECT :a", {"a": 1}, {"a": 2}]]`,
		`[["SELECT ?", 1, {"b": [1, 2]}, [3]]]`,
		`[]`, `[[]]`, `[1]`, `{}`, ``, `["SELECT 1"`, `["SELECT 1"] x`, `[""]`,
		"[[\"SELECT ?\", \"a\xffb\", \"\\ud800\"]]",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		stmts, err := decodeStatements(bytes.NewReader(body))
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("decoding from memory failed with a non-request error: %v", err)
			}
			if stmts != nil {
				t.Fatal("statements returned with an error")
			}
			return
		}
		checkStatements(t, stmts)

		// The statements go into the Raft log: they must encode.
		if _, err := command.Encode(command.Type_TYPE_EXECUTE, &command.Request{Statements: stmts}); err != nil {
			t.Fatalf("decoded statements do not encode: %v", err)
		}

		// Written back as JSON, they must decode to the same statements.
		again, err := decodeStatements(bytes.NewReader(encodeStatementsJSON(stmts)))
		if err != nil {
			t.Fatalf("re-decode %s: %v", encodeStatementsJSON(stmts), err)
		}
		if g, w := statementsString(again), statementsString(stmts); g != w {
			t.Fatalf("round trip changed the statements:\n got %s\nwant %s", g, w)
		}
	})
}
