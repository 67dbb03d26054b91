package statemachine

// SQL analysis: split a request into statements, classify each one, and
// rewrite the non-deterministic parts of writes into literals.
//
// How a rewrite is made. The statement is parsed with github.com/rqlite/sql
// only to find what to replace; the new text is then spliced into the
// original string at the positions the parser recorded. Printing the syntax
// tree back with String() would be simpler, but that printer does not
// reproduce SQLite faithfully: it drops RETURNING from UPDATE and DELETE,
// drops STRICT and WITHOUT ROWID, turns CURRENT_TIMESTAMP into the quoted
// identifier "CURRENT_TIMESTAMP" (which SQLite reads as a string) and panics
// on LIKE ... ESCAPE. Splicing leaves every byte we do not replace untouched,
// comments and formatting included.
//
// Why there is a fallback. rqlite/sql covers most, not all, of SQLite: it
// rejects VACUUM, ATTACH, DETACH, CREATE TEMP TABLE, PRAGMA x = ON,
// IS DISTINCT FROM, [bracketed] and non-ASCII identifiers, among others.
// Refusing those would make Cairn reject valid SQLite, so a statement the
// parser rejects is passed through unchanged, classified by a conservative
// keyword scan (fallbackAnalysis); if it is really invalid, SQLite reports
// its own error for it when it runs. Splitting a request into statements
// never depends on the parser: splitSQL follows SQLite's own tokenizer rules
// (and sqlite3_complete's state machine for trigger bodies), so one statement
// the parser rejects does not affect its neighbours.
//
// What is rewritten, and only in statements that can write (INSERT, UPDATE,
// DELETE, REPLACE, and the SELECT of CREATE TABLE ... AS SELECT):
//
//   - random() becomes an integer literal, each call its own value;
//   - randomblob(N), N a literal integer, becomes a blob literal of N bytes;
//   - the 'now' time value of date(), time(), datetime(), julianday(),
//     unixepoch(), strftime() and timediff(), explicit or implied (date()
//     with no argument means 'now'), becomes a UTC timestamp with
//     milliseconds, the precision SQLite itself uses for 'now';
//   - CURRENT_TIMESTAMP, CURRENT_DATE and CURRENT_TIME become string
//     literals in SQLite's formats.
//
// One clock reading serves a whole Analyze call, so every statement of a
// batch sees the same time, as SQLite gives one statement the same 'now'.
//
// Read-only statements are never rewritten: they change no replica's data,
// and rewriting would change their results (every row of
// "SELECT random() FROM t" would get the same value, and
// "ORDER BY random()" would no longer shuffle).
//
// What is deliberately not rewritten, or cannot be:
//
//   - DDL bodies: column DEFAULTs, CHECK and generated-column expressions,
//     trigger and view bodies. They are stored in the schema and evaluated
//     later; rewriting them would freeze one value into the schema
//     forever. The consequence is that an INSERT relying on
//     DEFAULT CURRENT_TIMESTAMP, or firing a trigger that calls random(),
//     still computes its value on each replica (see DESIGN.md).
//   - A time value or randomblob size passed as a bound parameter
//     (datetime(?) with 'now' as the argument, randomblob(?)): the
//     parameters are not part of the SQL text.
//   - The 'localtime' and 'utc' modifiers depend on each node's time zone;
//     run every node in the same zone (UTC).
//   - random() evaluated once per row (UPDATE t SET x = random()) becomes
//     one value shared by all rows: SQL has no seeded per-row generator to
//     rewrite it to. In an ORDER BY or GROUP BY term it becomes a constant
//     key (written as CAST(n AS INTEGER), since a bare integer there would
//     name a result column), so ORDER BY random() keeps a fixed order.
//   - randomblob(N) with N above maxRandomBlob bytes is left alone rather
//     than bloating the Raft log.

import (
	"encoding/hex"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rqlite/sql"

	"github.com/cairndb/cairn/internal/sqlitecomplete"
)

// maxRandomBlob is the largest randomblob(N) that is rewritten into a
// literal; its hexadecimal form takes twice as many bytes in the log.
const maxRandomBlob = 1 << 20

// Timestamp layouts, all in UTC as SQLite computes them.
const (
	layoutNow       = "2006-01-02 15:04:05.000" // replaces 'now'
	layoutTimestamp = "2006-01-02 15:04:05"     // CURRENT_TIMESTAMP
	layoutDate      = "2006-01-02"              // CURRENT_DATE
	layoutTime      = "15:04:05"                // CURRENT_TIME
)

// Analysis describes one SQL statement after rewriting.
type Analysis struct {
	// SQL is the statement to execute, rewritten if needed (the original
	// text, trimmed of surrounding whitespace and of its ';', when nothing
	// changed).
	SQL string
	// ReadOnly is true when the statement cannot modify the database:
	// SELECT and VALUES (with or without CTEs), EXPLAIN of anything, and
	// PRAGMA forms that only report a value.
	ReadOnly bool
	// ReturnsRows is true when executing the statement yields a result set:
	// SELECT, VALUES, EXPLAIN, PRAGMA, and INSERT, UPDATE or DELETE with a
	// RETURNING clause.
	ReturnsRows bool
	// Rewritten is true when SQL differs from the input because
	// non-deterministic calls were replaced by literals.
	Rewritten bool
}

// Rewriter replaces non-deterministic SQL with literal values so every
// replica computes identical rows. The zero value is ready to use; a
// Rewriter is safe for concurrent use when its functions are.
type Rewriter struct {
	Now  func() time.Time // defaults to time.Now
	Rand func() int64     // defaults to a randomly seeded source; used for RANDOM() and RANDOMBLOB()

	// cache remembers the analysis of statements that needed no rewrite:
	// applications send the same statement texts again and again, and
	// parsing is most of the cost of Analyze.
	cache analysisCache
}

// maxCachedAnalyses bounds the analysis cache; it is emptied when full.
const maxCachedAnalyses = 4096

// maxCachedSQL is the longest statement text the cache keeps.
const maxCachedSQL = 4096

// analysisCache maps statement text to its analysis. The zero value is
// ready to use.
type analysisCache struct {
	mu sync.Mutex
	m  map[string][]Analysis
}

func (c *analysisCache) get(sql string) ([]Analysis, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[sql]
	return a, ok
}

func (c *analysisCache) put(sql string, a []Analysis) {
	if len(sql) > maxCachedSQL {
		return
	}
	for _, x := range a {
		if x.Rewritten {
			// A rewrite puts fresh values in each time: never reuse it.
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedAnalyses {
		c.m = make(map[string][]Analysis)
	}
	c.m[sql] = a
}

// Analyze parses sql, which may hold several statements separated by ';',
// and returns one Analysis per statement. Empty statements (only
// whitespace or comments) yield nothing, so an empty sql yields no
// analyses. A statement the parser does not understand is returned
// unchanged with a conservative classification, never as an error, so that
// SQLite can run it or report its own error. The error result is always nil
// today; it is there so that stricter checks need no change of signature.
// The returned slice may be shared with later calls: do not modify it.
func (r *Rewriter) Analyze(sql string) ([]Analysis, error) {
	if r != nil {
		if a, ok := r.cache.get(sql); ok {
			return a, nil
		}
	}
	var pieces [8]sqlPiece
	ps := splitSQL(sql, pieces[:0])
	if len(ps) == 0 {
		return nil, nil
	}
	env := rewriteEnv{r: r}
	out := make([]Analysis, len(ps))
	for i, p := range ps {
		out[i] = env.analyzeStatement(p)
	}
	if r != nil {
		r.cache.put(sql, out)
	}
	return out, nil
}

// rewriteEnv carries what the statements of one Analyze call share: the
// clock reading, taken on first use, and the random source.
type rewriteEnv struct {
	r      *Rewriter
	nowSet bool
	now    time.Time
	rnd    func() int64
}

func (e *rewriteEnv) time() time.Time {
	if !e.nowSet {
		now := time.Now
		if e.r != nil && e.r.Now != nil {
			now = e.r.Now
		}
		e.now = now().UTC()
		e.nowSet = true
	}
	return e.now
}

func (e *rewriteEnv) random() int64 {
	if e.rnd == nil {
		e.rnd = defaultRand
		if e.r != nil && e.r.Rand != nil {
			e.rnd = e.r.Rand
		}
	}
	return e.rnd()
}

// defaultRand covers the whole int64 range, as SQLite's random() does.
// math/rand/v2's global source is seeded from the operating system and is
// safe for concurrent use.
func defaultRand() int64 { return int64(rand.Uint64()) }

// analyzeStatement classifies one statement and rewrites it if it writes.
// A parser panic is treated like a parse error: a bug in a third-party
// parser must not take the node down.
func (e *rewriteEnv) analyzeStatement(p sqlPiece) (a Analysis) {
	defer func() {
		if recover() != nil {
			a = fallbackAnalysis(p.text)
		}
	}()
	parser := sql.NewParser(strings.NewReader(p.text))
	stmt, err := parser.ParseStatement()
	if err != nil {
		return fallbackAnalysis(p.text)
	}
	// The splitter gave the parser exactly one statement; anything after it
	// means the two disagree, so trust neither the tree nor its positions.
	if _, err := parser.ParseStatement(); err != io.EOF {
		return fallbackAnalysis(p.text)
	}

	a.SQL = p.text
	a.ReadOnly, a.ReturnsRows = classify(stmt)
	if a.ReadOnly || !p.hint {
		return a
	}

	// Only the parts of a write that run now are rewritten; see the file
	// comment for the DDL that is left alone.
	var root sql.Node
	switch s := stmt.(type) {
	case *sql.InsertStatement, *sql.UpdateStatement, *sql.DeleteStatement:
		root = s
	case *sql.CreateTableStatement:
		if s.Select != nil {
			root = s.Select
		}
	}
	if root == nil {
		return a
	}
	v := rewriteVisitor{}
	if err := v.walk(root); err != nil || len(v.edits) == 0 {
		return a
	}
	a.SQL, a.Rewritten = e.splice(p.text, v.edits)
	return a
}

// classify reports whether a parsed statement is read-only and whether it
// returns rows.
func classify(stmt sql.Statement) (readOnly, returnsRows bool) {
	switch s := stmt.(type) {
	case *sql.SelectStatement: // also VALUES and WITH ... SELECT
		return true, true
	case *sql.ExplainStatement: // EXPLAIN never runs the statement
		return true, true
	case *sql.PragmaStatement:
		return pragmaReadOnly(s), true
	case *sql.InsertStatement: // also REPLACE and WITH ... INSERT
		return false, s.ReturningClause != nil
	case *sql.UpdateStatement:
		return false, s.ReturningClause != nil
	case *sql.DeleteStatement:
		return false, s.ReturningClause != nil
	default: // DDL, transactions, savepoints, ANALYZE, REINDEX
		return false, false
	}
}

// pragmaReadOnly reports whether a parsed PRAGMA only reads. "PRAGMA x"
// reads unless x acts; "PRAGMA x = v" writes; "PRAGMA x(v)" is a setter
// except for the pragmas whose argument names what to report on.
func pragmaReadOnly(s *sql.PragmaStatement) bool {
	switch x := s.Expr.(type) {
	case *sql.Ident:
		return !pragmaActs(x.Name)
	case *sql.Call:
		return pragmaQueriesArg(x.Name.Name)
	default:
		return false
	}
}

// pragmaActs reports whether a PRAGMA without an argument changes the
// database file (wal_checkpoint and incremental_vacuum change no rows but
// are still kept off the read path).
func pragmaActs(name string) bool {
	switch strings.ToLower(name) {
	case "optimize", "wal_checkpoint", "incremental_vacuum", "shrink_memory":
		return true
	}
	return false
}

// pragmaQueriesArg reports whether "PRAGMA name(arg)" only reports on arg.
func pragmaQueriesArg(name string) bool {
	switch strings.ToLower(name) {
	case "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo",
		"index_list", "foreign_key_list", "foreign_key_check",
		"integrity_check", "quick_check":
		return true
	}
	return false
}

// editKind says what replaces the span of an edit.
type editKind uint8

const (
	editRandom     editKind = iota // random() → integer literal
	editRandomTerm                 // random() as a whole ORDER BY / GROUP BY term → CAST(n AS INTEGER)
	editRandomBlob                 // randomblob(N) → X'…'
	editNow                        // 'now' → '2006-01-02 15:04:05.000'
	editNowArg                     // missing time value → insert 'now' timestamp
	editNowNextArg                 // missing time value after a format → insert , '…'
	editTimestamp                  // CURRENT_TIMESTAMP
	editDate                       // CURRENT_DATE
	editTime                       // CURRENT_TIME
)

// sqlEdit replaces the runes [start, end) of a statement. Positions are rune
// offsets because that is what the rqlite/sql scanner counts.
type sqlEdit struct {
	start, end int
	kind       editKind
	n          int // randomblob length
}

// rewriteVisitor walks a statement and records the edits that make it
// deterministic. It never replaces nodes (see the file comment).
//
// It also fills in what sql.Walk does not visit: the CTEs of a WITH clause,
// subqueries used as expressions (SelectExpr) and the operand of
// ISNULL/NOTNULL.
type rewriteVisitor struct {
	edits []sqlEdit
	// names are identifiers in name position (a table, a column being
	// assigned, an alias...) spelled like CURRENT_DATE, which SQLite then
	// reads as a name, not as the time keyword.
	names []*sql.Ident
	// terms are random() calls that form a whole ORDER BY or GROUP BY term.
	terms []*sql.Call
}

var _ sql.Visitor = (*rewriteVisitor)(nil)

func (v *rewriteVisitor) walk(n sql.Node) error {
	_, err := sql.Walk(v, n)
	return err
}

// Visit implements sql.Visitor.
func (v *rewriteVisitor) Visit(n sql.Node) (sql.Visitor, sql.Node, error) {
	switch n := n.(type) {
	case *sql.WithClause:
		for _, cte := range n.CTEs {
			if cte.Select != nil {
				if err := v.walk(cte.Select); err != nil {
					return nil, n, err
				}
			}
		}
		return nil, n, nil
	case sql.SelectExpr:
		if n.SelectStatement != nil {
			if err := v.walk(n.SelectStatement); err != nil {
				return nil, n, err
			}
		}
		return nil, n, nil
	case *sql.Null:
		if n.X != nil {
			if err := v.walk(n.X); err != nil {
				return nil, n, err
			}
		}
		return nil, n, nil

	case *sql.Call:
		v.name(n.Name)
		v.call(n)
	case *sql.Ident:
		if !n.Quoted && !slices.Contains(v.names, n) {
			if k, ok := currentKeyword(n.Name); ok {
				v.add(n.NamePos.Offset, n.NamePos.Offset+len(n.Name), k)
			}
		}
	case *sql.TimestampLit:
		if k, ok := currentKeyword(n.Value); ok {
			v.add(n.ValuePos.Offset, n.ValuePos.Offset+len(n.Value), k)
		}

	case *sql.SelectStatement:
		for _, x := range n.GroupByExprs {
			v.term(x)
		}
	case *sql.OrderingTerm:
		v.term(n.X)

	// Identifiers in name position.
	case *sql.InsertStatement:
		v.name(n.Table, n.Alias)
		v.name(n.Columns...)
	case *sql.QualifiedTableName:
		v.name(n.Name, n.Alias, n.Index)
	case *sql.QualifiedTableFunctionName:
		v.name(n.Name, n.Alias)
	case *sql.QualifiedRef:
		v.name(n.Schema, n.Table, n.Column)
	case *sql.Assignment:
		v.name(n.Columns...)
	case *sql.ResultColumn:
		v.name(n.Alias)
	case *sql.ParenSource:
		v.name(n.Alias)
	case *sql.UsingConstraint:
		v.name(n.Columns...)
	case *sql.Window:
		v.name(n.Name)
	case *sql.WindowDefinition:
		v.name(n.Base)
	case *sql.OverClause:
		v.name(n.Name)
	case *sql.Type:
		v.name(n.Name)
	case *sql.CollateExpr:
		if n.Collation != nil {
			v.name(n.Collation.Name)
		}
	case *sql.BinaryExpr: // x IN table
		if id, ok := n.Y.(*sql.Ident); ok && (n.Op == sql.IN || n.Op == sql.NOTIN) {
			v.name(id)
		}
	}
	return v, n, nil
}

// VisitEnd implements sql.Visitor.
func (v *rewriteVisitor) VisitEnd(n sql.Node) (sql.Node, error) { return n, nil }

func (v *rewriteVisitor) add(start, end int, k editKind) {
	v.edits = append(v.edits, sqlEdit{start: start, end: end, kind: k})
}

// name remembers identifiers in name position that are spelled like a
// CURRENT_* keyword; other names need no bookkeeping.
func (v *rewriteVisitor) name(ids ...*sql.Ident) {
	for _, id := range ids {
		if id == nil || id.Quoted {
			continue
		}
		if _, ok := currentKeyword(id.Name); ok {
			v.names = append(v.names, id)
		}
	}
}

// term remembers a random() call that is, up to parentheses, unary signs
// and COLLATE, a whole ORDER BY or GROUP BY term: SQLite reads an integer
// constant there as a result-column number.
func (v *rewriteVisitor) term(x sql.Expr) {
	for {
		switch e := x.(type) {
		case *sql.ParenExpr:
			x = e.X
		case *sql.UnaryExpr:
			if e.Op != sql.PLUS && e.Op != sql.MINUS {
				return
			}
			x = e.X
		case *sql.CollateExpr:
			x = e.X
		case *sql.Call:
			if isRandomCall(e) {
				v.terms = append(v.terms, e)
			}
			return
		default:
			return
		}
	}
}

func isRandomCall(c *sql.Call) bool {
	return len(c.Args) == 0 && strings.EqualFold(c.Name.Name, "random")
}

// call records the edits for one function call.
func (v *rewriteVisitor) call(c *sql.Call) {
	if c.Star.IsValid() || c.Filter != nil || c.Over != nil || c.Distinct.IsValid() {
		return
	}
	start, end := c.Name.NamePos.Offset, c.Rparen.Offset+1
	switch name := c.Name.Name; {
	case isRandomCall(c):
		k := editRandom
		if slices.Contains(v.terms, c) {
			k = editRandomTerm
		}
		v.add(start, end, k)
	case strings.EqualFold(name, "randomblob"):
		if len(c.Args) != 1 {
			return
		}
		if n, ok := randomBlobLen(c.Args[0]); ok {
			v.edits = append(v.edits, sqlEdit{start: start, end: end, kind: editRandomBlob, n: n})
		}
	case strings.EqualFold(name, "date"), strings.EqualFold(name, "time"),
		strings.EqualFold(name, "datetime"), strings.EqualFold(name, "julianday"),
		strings.EqualFold(name, "unixepoch"):
		v.timeValue(c, 0)
	case strings.EqualFold(name, "strftime"):
		if len(c.Args) >= 1 {
			v.timeValue(c, 1)
		}
	case strings.EqualFold(name, "timediff"):
		if len(c.Args) == 2 {
			v.timeValue(c, 0)
			v.timeValue(c, 1)
		}
	}
}

// timeValue records the edit for argument i of a date function when it is
// 'now', or when it is missing, which SQLite also reads as 'now'. A
// double-quoted "now" counts too: SQLite takes it as a string when no
// column has that name, a common slip.
func (v *rewriteVisitor) timeValue(c *sql.Call, i int) {
	if i == len(c.Args) {
		k := editNowArg
		if i > 0 {
			k = editNowNextArg
		}
		v.add(c.Rparen.Offset, c.Rparen.Offset, k)
		return
	}
	if i > len(c.Args) {
		return
	}
	switch x := c.Args[i].(type) {
	case *sql.StringLit:
		if strings.EqualFold(x.Value, "now") {
			v.add(x.ValuePos.Offset, x.ValuePos.Offset+len(`'now'`), editNow)
		}
	case *sql.Ident:
		if x.Quoted && strings.EqualFold(x.Name, "now") {
			// splice checks that the quote is '"' and not '`'.
			v.add(x.NamePos.Offset, x.NamePos.Offset+len(`"now"`), editNow)
		}
	}
}

// randomBlobLen returns N for randomblob(N) when N is a literal integer
// (SQLite makes N < 1 one byte) no larger than maxRandomBlob.
func randomBlobLen(x sql.Expr) (int, bool) {
	neg := false
	for {
		switch e := x.(type) {
		case *sql.ParenExpr:
			x = e.X
			continue
		case *sql.UnaryExpr:
			switch e.Op {
			case sql.MINUS:
				neg = !neg
			case sql.PLUS:
			default:
				return 0, false
			}
			x = e.X
			continue
		case *sql.NumberLit:
			var n int64
			var err error
			if s := e.Value; len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
				var u uint64
				u, err = strconv.ParseUint(s[2:], 16, 64)
				n = int64(u)
			} else {
				n, err = strconv.ParseInt(s, 10, 64)
			}
			if err != nil {
				return 0, false
			}
			if neg {
				n = -n
			}
			if n < 1 {
				n = 1
			}
			if n > maxRandomBlob {
				return 0, false
			}
			return int(n), true
		default:
			return 0, false
		}
	}
}

// currentKeyword maps CURRENT_TIMESTAMP, CURRENT_DATE and CURRENT_TIME, in
// any case, to their edit.
func currentKeyword(s string) (editKind, bool) {
	switch len(s) {
	case len("CURRENT_TIMESTAMP"):
		if strings.EqualFold(s, "CURRENT_TIMESTAMP") {
			return editTimestamp, true
		}
	case len("CURRENT_DATE"): // same length as CURRENT_TIME
		if strings.EqualFold(s, "CURRENT_DATE") {
			return editDate, true
		}
		if strings.EqualFold(s, "CURRENT_TIME") {
			return editTime, true
		}
	}
	return 0, false
}

// splice applies edits to text. Each edit is checked against the text it
// replaces, so a position the parser got wrong costs a rewrite, never a
// corrupted statement.
func (e *rewriteEnv) splice(text string, edits []sqlEdit) (string, bool) {
	slices.SortStableFunc(edits, func(a, b sqlEdit) int { return a.start - b.start })

	// Rune offsets equal byte offsets unless the text has non-ASCII runes.
	var runeAt []int
	for i := 0; i < len(text); i++ {
		if text[i] >= 0x80 {
			runeAt = make([]int, 0, len(text)+1)
			for j := range text {
				runeAt = append(runeAt, j)
			}
			runeAt = append(runeAt, len(text))
			break
		}
	}
	offset := func(r int) int {
		if runeAt == nil {
			return r
		}
		if r < 0 || r >= len(runeAt) {
			return -1
		}
		return runeAt[r]
	}

	var b strings.Builder
	b.Grow(len(text) + 32*len(edits))
	last, applied := 0, 0
	var prev sqlEdit
	for i, ed := range edits {
		start, end := offset(ed.start), offset(ed.end)
		if start < last || end < start || end > len(text) {
			continue // overlapping, or out of range
		}
		if i > 0 && ed == prev && start == end {
			continue // the same insertion recorded twice
		}
		if !editFits(text[start:end], ed.kind) {
			continue
		}
		b.WriteString(text[last:start])
		e.writeEdit(&b, ed)
		last, prev = end, ed
		applied++
	}
	if applied == 0 {
		return text, false
	}
	b.WriteString(text[last:])
	return b.String(), true
}

// editFits checks that old is the text an edit of kind k expects to replace.
func editFits(old string, k editKind) bool {
	switch k {
	case editRandom, editRandomTerm, editRandomBlob:
		return len(old) > 2 && old[len(old)-1] == ')'
	case editNow:
		return len(old) == 5 && (old[0] == '\'' || old[0] == '"') &&
			old[4] == old[0] && strings.EqualFold(old[1:4], "now")
	case editNowArg, editNowNextArg:
		return old == ""
	case editTimestamp, editDate, editTime:
		kk, ok := currentKeyword(old)
		return ok && kk == k
	}
	return false
}

func (e *rewriteEnv) writeEdit(b *strings.Builder, ed sqlEdit) {
	var buf [32]byte
	switch ed.kind {
	case editRandom:
		n := e.random()
		if n < 0 {
			// Parenthesised so that "5-random()" cannot become the comment
			// "5--123".
			b.WriteByte('(')
			b.Write(strconv.AppendInt(buf[:0], n, 10))
			b.WriteByte(')')
		} else {
			b.Write(strconv.AppendInt(buf[:0], n, 10))
		}
	case editRandomTerm:
		b.WriteString("CAST(")
		b.Write(strconv.AppendInt(buf[:0], e.random(), 10))
		b.WriteString(" AS INTEGER)")
	case editRandomBlob:
		raw := make([]byte, (ed.n+7)&^7)
		for i := 0; i < len(raw); i += 8 {
			u := uint64(e.random())
			for j := range 8 {
				raw[i+j] = byte(u >> (8 * j))
			}
		}
		b.WriteString("X'")
		enc := make([]byte, hex.EncodedLen(ed.n))
		hex.Encode(enc, raw[:ed.n])
		b.Write(enc)
		b.WriteByte('\'')
	case editNow, editNowArg:
		writeQuotedTime(b, e.time(), layoutNow)
	case editNowNextArg:
		b.WriteString(", ")
		writeQuotedTime(b, e.time(), layoutNow)
	case editTimestamp:
		writeQuotedTime(b, e.time(), layoutTimestamp)
	case editDate:
		writeQuotedTime(b, e.time(), layoutDate)
	case editTime:
		writeQuotedTime(b, e.time(), layoutTime)
	}
}

func writeQuotedTime(b *strings.Builder, t time.Time, layout string) {
	var buf [32]byte
	b.WriteByte('\'')
	b.Write(t.AppendFormat(buf[:0], layout))
	b.WriteByte('\'')
}

// sqlPiece is one statement cut out of a request: its text, without the
// surrounding whitespace and the ';', and whether it mentions a word that
// may need a rewrite (a cheap filter that spares the tree walk for most
// statements).
type sqlPiece struct {
	text string
	hint bool
}

// sqlToken classifies tokens as SQLite's tokenizer would, to the extent
// splitting and the fallback need.
type sqlToken uint8

const (
	tokSpace  sqlToken = iota // whitespace and comments
	tokSemi                   // ;
	tokWord                   // unquoted identifier or keyword
	tokQuoted                 // "identifier", `identifier`, [identifier]
	tokString                 // 'string'
	tokOther                  // numbers, parameters, operators
)

// scanSQLToken returns the token that starts at s[i] and the offset just
// past it. Unterminated strings, identifiers and comments run to the end
// of s, as in SQLite.
func scanSQLToken(s string, i int) (sqlToken, int) {
	c := s[i]
	switch {
	case isSQLSpace(c):
		j := i + 1
		for j < len(s) && isSQLSpace(s[j]) {
			j++
		}
		return tokSpace, j
	case c == '-' && i+1 < len(s) && s[i+1] == '-':
		if j := strings.IndexByte(s[i+2:], '\n'); j >= 0 {
			return tokSpace, i + 2 + j + 1
		}
		return tokSpace, len(s)
	case c == '/' && i+1 < len(s) && s[i+1] == '*':
		if j := strings.Index(s[i+2:], "*/"); j >= 0 {
			return tokSpace, i + 2 + j + 2
		}
		return tokSpace, len(s)
	case c == ';':
		return tokSemi, i + 1
	case c == '\'':
		return tokString, quotedEnd(s, i)
	case c == '"' || c == '`':
		return tokQuoted, quotedEnd(s, i)
	case c == '[':
		if j := strings.IndexByte(s[i+1:], ']'); j >= 0 {
			return tokQuoted, i + 1 + j + 1
		}
		return tokQuoted, len(s)
	case isIDStart(c):
		j := i + 1
		for j < len(s) && isIDChar(s[j]) {
			j++
		}
		return tokWord, j
	case c >= '0' && c <= '9':
		j := i + 1
		for j < len(s) && (isIDChar(s[j]) || s[j] == '.') {
			j++
		}
		return tokOther, j
	case c == '?' || c == ':' || c == '@' || c == '$':
		j := i + 1
		for j < len(s) && isIDChar(s[j]) {
			j++
		}
		return tokOther, j
	default:
		return tokOther, i + 1
	}
}

// quotedEnd returns the offset just past the quoted token at s[i]; a
// doubled quote character stands for itself.
func quotedEnd(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

func isSQLSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

// isIDStart and isIDChar follow SQLite: any byte of a multi-byte UTF-8
// sequence may be part of an identifier.
func isIDStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIDChar(c byte) bool {
	return isIDStart(c) || c >= '0' && c <= '9' || c == '$'
}

// splitSQL appends to dst the statements of s, skipping empty ones. A
// statement keeps its comments, leading ones included.
func splitSQL(s string, dst []sqlPiece) []sqlPiece {
	var m sqlitecomplete.Machine
	start := 0           // where the current statement begins
	significant := false // the current statement has a token that is not a comment
	hint := false
	for i := 0; i < len(s); {
		tok, j := scanSQLToken(s, i)
		switch tok {
		case tokSpace:
		case tokSemi:
			if m.Next(sqlitecomplete.Semi) {
				if significant {
					dst = append(dst, sqlPiece{text: trimSQLSpace(s[start:i]), hint: hint})
				}
				start, significant, hint = j, false, false
			}
		default:
			significant = true
			class := sqlitecomplete.Other
			switch tok {
			case tokWord:
				class = sqlitecomplete.WordClass(s[i:j])
				hint = hint || isHintWord(s[i:j])
			case tokQuoted:
				hint = hint || j-i > 2 && isHintWord(s[i+1:j-1])
			}
			m.Next(class)
		}
		i = j
	}
	if significant {
		dst = append(dst, sqlPiece{text: trimSQLSpace(s[start:]), hint: hint})
	}
	return dst
}

func trimSQLSpace(s string) string {
	i, j := 0, len(s)
	for i < j && isSQLSpace(s[i]) {
		i++
	}
	for j > i && isSQLSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}

// isHintWord reports whether w names something the rewriter may replace.
func isHintWord(w string) bool {
	switch len(w) {
	case 4:
		return strings.EqualFold(w, "date") || strings.EqualFold(w, "time")
	case 6:
		return strings.EqualFold(w, "random")
	case 8:
		return strings.EqualFold(w, "datetime") || strings.EqualFold(w, "strftime") ||
			strings.EqualFold(w, "timediff")
	case 9:
		return strings.EqualFold(w, "julianday") || strings.EqualFold(w, "unixepoch")
	case 10:
		return strings.EqualFold(w, "randomblob")
	case 12:
		return strings.EqualFold(w, "current_date") || strings.EqualFold(w, "current_time")
	case 17:
		return strings.EqualFold(w, "current_timestamp")
	}
	return false
}

// fallbackAnalysis classifies a statement the parser rejected from its
// keywords alone, erring towards "writes": a statement wrongly taken for a
// write is merely refused by /db/query (or sent through the log), while one
// wrongly taken for a read would bypass the log. Nothing is rewritten.
func fallbackAnalysis(text string) Analysis {
	a := Analysis{SQL: text}

	type token struct {
		kind sqlToken
		text string // lower case for words
	}
	var toks []token
	for i := 0; i < len(text); {
		tok, j := scanSQLToken(text, i)
		switch tok {
		case tokSpace:
		case tokWord:
			toks = append(toks, token{tok, strings.ToLower(text[i:j])})
		default:
			toks = append(toks, token{tok, text[i:j]})
		}
		i = j
	}
	if len(toks) == 0 {
		return a
	}
	first := ""
	if toks[0].kind == tokWord {
		first = toks[0].text
	}

	writes, returning := false, false
	verb := "" // the statement after WITH's CTEs: the first verb outside parentheses
	depth := 0
	for i, t := range toks {
		if t.kind != tokWord {
			switch t.text {
			case "(":
				depth++
			case ")":
				depth--
			}
			continue
		}
		if t.text == "returning" {
			returning = true
		}
		// "replace(" and the like are function calls, not verbs.
		if i > 0 && isWriteWord(t.text) && (i+1 == len(toks) || toks[i+1].text != "(") {
			writes = true
		}
		if verb == "" && depth == 0 {
			switch t.text {
			case "select", "values", "insert", "replace", "update", "delete":
				verb = t.text
			}
		}
	}

	switch first {
	case "select", "values":
		a.ReadOnly, a.ReturnsRows = !writes, true
	case "explain":
		a.ReadOnly, a.ReturnsRows = true, true
	case "with":
		query := verb == "select" || verb == "values"
		a.ReadOnly = query && !writes
		a.ReturnsRows = query || returning
	case "pragma":
		// PRAGMA [schema.]name [= value | (value)]
		a.ReturnsRows = true
		name, j := "", 1
		if j < len(toks) && toks[j].kind != tokOther {
			name, j = toks[j].text, j+1
		}
		if j+1 < len(toks) && toks[j].text == "." && toks[j+1].kind != tokOther {
			name, j = toks[j+1].text, j+2
		}
		if len(name) > 1 && toks[j-1].kind == tokQuoted {
			name = name[1 : len(name)-1]
		}
		switch {
		case name == "":
		case j == len(toks):
			a.ReadOnly = !pragmaActs(name)
		case toks[j].text == "(":
			a.ReadOnly = pragmaQueriesArg(name)
		}
	default:
		a.ReturnsRows = returning
	}
	return a
}

// isWriteWord reports whether w, when not followed by '(', marks a
// statement that writes.
func isWriteWord(w string) bool {
	switch w {
	case "insert", "update", "delete", "replace", "create", "drop", "alter",
		"attach", "detach", "vacuum", "reindex", "analyze", "pragma":
		return true
	}
	return false
}
