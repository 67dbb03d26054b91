package migrations

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cairndb/cairn/internal/sqlitecomplete"
)

// Splitting a migration file into statements.
//
// Both splitters work on tokens, never on raw ';' characters: a ';' inside a
// string, a quoted identifier, a comment or a body that holds statements of
// its own does not end a statement. A statement keeps its inner comments but
// loses the comments and whitespace around it and its ';'. A statement that
// holds only comments is dropped.
//
// SQLite follows SQLite's tokenizer ('…', "…", `…` and […] quoting, -- and
// /* */ comments, which do not nest) and the state machine of
// sqlite3_complete, which keeps the body of CREATE [TEMP] TRIGGER … BEGIN …
// END in one statement: the body ends at an END that directly follows a ';'.
//
// PostgreSQL follows its lexer: '…' with '' doubled, E'…' with backslash
// escapes, "…", $$…$$ and $tag$…$tag$ dollar quoting, -- and nested /* */
// comments, and psql's heuristic for SQL-standard function bodies: in a
// statement that starts with CREATE [OR REPLACE] FUNCTION or PROCEDURE,
// BEGIN (as in BEGIN ATOMIC) opens a body that the matching END closes
// (a CASE inside it counts as well), and a ';' inside parentheses or inside
// such a body does not end the statement. COPY … FROM STDIN with inline
// data is not supported.
//
// An unterminated quote, comment or dollar-quoted string, and a trigger or
// function body that is not closed, are errors with the line they start on:
// sent to the database, they would swallow the rest of the file.

// piece is one statement of a migration file.
type piece struct {
	sql  string
	line int // line of the file where the statement starts, from 1
}

// tokenKind is the class of a token for the splitters.
type tokenKind uint8

const (
	tokSpace tokenKind = iota // whitespace or a comment
	tokSemi                   // ;
	tokWord                   // an unquoted word (keyword or identifier)
	tokOpen                   // (
	tokClose                  // )
	tokOther                  // anything else: literals, quoted names, operators
)

// scanner returns the kind and end of the token that starts at s[i].
type scanner func(s string, i int) (tokenKind, int, error)

// boundary decides, token by token, where statements end.
type boundary interface {
	// token is called with every token that is not whitespace or a
	// comment; word is the lower-case text of a tokWord. It reports
	// whether a tokSemi ends the statement.
	token(kind tokenKind, word string) (ends bool)
	// complete returns an error when the statement so far is an unclosed
	// body.
	complete() error
	reset()
}

// split returns the statements of src in dialect d.
func split(src string, d Dialect) ([]piece, error) {
	var (
		scan scanner
		b    boundary
	)
	switch d {
	case SQLite:
		scan, b = scanSQLite, &sqliteBoundary{}
	case Postgres:
		scan, b = scanPostgres, &postgresBoundary{}
	default:
		return nil, fmt.Errorf("unknown dialect %q", d)
	}
	var (
		out        []piece
		start, end = -1, -1 // the current statement's first and last significant bytes
		startLine  int
		line       = 1 // line of position lineAt
		lineAt     int
	)
	lineOf := func(pos int) int {
		line += strings.Count(src[lineAt:pos], "\n")
		lineAt = pos
		return line
	}
	for i := 0; i < len(src); {
		kind, j, err := scan(src, i)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", lineOf(i), err)
		}
		switch kind {
		case tokSpace:
		case tokSemi:
			if b.token(tokSemi, "") {
				if start >= 0 {
					out = append(out, piece{sql: src[start:end], line: startLine})
				}
				start, end = -1, -1
				b.reset()
			} else if start >= 0 {
				end = j
			}
		default:
			if start < 0 {
				start, startLine = i, lineOf(i)
			}
			end = j
			word := ""
			if kind == tokWord {
				word = strings.ToLower(src[i:j])
			}
			b.token(kind, word)
		}
		i = j
	}
	if start >= 0 {
		if err := b.complete(); err != nil {
			return nil, fmt.Errorf("line %d: %w", startLine, err)
		}
		out = append(out, piece{sql: src[start:end], line: startLine})
	}
	return out, nil
}

// Errors of the tokenizers.
var (
	errUnterminatedString  = errors.New("unterminated quoted string")
	errUnterminatedIdent   = errors.New("unterminated quoted identifier")
	errUnterminatedComment = errors.New("unterminated /* comment")
)

// quoted returns the end of the token quoted by s[i], in which a doubled
// quote character stands for itself.
func quoted(s string, i int) (int, bool) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return len(s), false
}

// lineComment returns the end of the -- comment at s[i], its newline
// included.
func lineComment(s string, i int) int {
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(s)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// isIdentStart and isIdentChar are the same for both dialects: ASCII
// letters, '_', any byte of a multi-byte UTF-8 sequence, then digits and
// '$' as well.
func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanSQLite reads one token of SQLite.
func scanSQLite(s string, i int) (tokenKind, int, error) {
	c := s[i]
	switch {
	case isSpace(c):
		j := i + 1
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		return tokSpace, j, nil
	case c == '-' && strings.HasPrefix(s[i:], "--"):
		return tokSpace, lineComment(s, i), nil
	case c == '/' && strings.HasPrefix(s[i:], "/*"):
		if j := strings.Index(s[i+2:], "*/"); j >= 0 {
			return tokSpace, i + 2 + j + 2, nil
		}
		return tokSpace, len(s), errUnterminatedComment
	case c == ';':
		return tokSemi, i + 1, nil
	case c == '(':
		return tokOpen, i + 1, nil
	case c == ')':
		return tokClose, i + 1, nil
	case c == '\'':
		j, ok := quoted(s, i)
		if !ok {
			return tokOther, j, errUnterminatedString
		}
		return tokOther, j, nil
	case c == '"' || c == '`':
		j, ok := quoted(s, i)
		if !ok {
			return tokOther, j, errUnterminatedIdent
		}
		return tokOther, j, nil
	case c == '[':
		if j := strings.IndexByte(s[i+1:], ']'); j >= 0 {
			return tokOther, i + 1 + j + 1, nil
		}
		return tokOther, len(s), errUnterminatedIdent
	case isIdentStart(c):
		j := i + 1
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
		return tokWord, j, nil
	case isDigit(c) || c == '?' || c == ':' || c == '@' || c == '$':
		// Numbers and parameters: their tail may look like a word.
		j := i + 1
		for j < len(s) && (isIdentChar(s[j]) || s[j] == '.' && isDigit(c)) {
			j++
		}
		return tokOther, j, nil
	}
	return tokOther, i + 1, nil
}

// sqliteBoundary ends statements as sqlite3_complete does.
type sqliteBoundary struct {
	m sqlitecomplete.Machine
}

func (b *sqliteBoundary) token(kind tokenKind, word string) bool {
	class := sqlitecomplete.Other
	switch kind {
	case tokSemi:
		class = sqlitecomplete.Semi
	case tokWord:
		class = sqlitecomplete.WordClass(word)
	}
	return b.m.Next(class)
}

func (b *sqliteBoundary) complete() error {
	if b.m.InTrigger() {
		return errors.New("CREATE TRIGGER has no END: its body must end with \"END;\"")
	}
	return nil
}

func (b *sqliteBoundary) reset() { b.m.Reset() }

// scanPostgres reads one token of PostgreSQL.
func scanPostgres(s string, i int) (tokenKind, int, error) {
	c := s[i]
	switch {
	case isSpace(c):
		j := i + 1
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		return tokSpace, j, nil
	case c == '-' && strings.HasPrefix(s[i:], "--"):
		return tokSpace, lineComment(s, i), nil
	case c == '/' && strings.HasPrefix(s[i:], "/*"):
		// PostgreSQL's block comments nest.
		depth := 0
		for j := i; j+1 < len(s); {
			switch {
			case s[j] == '/' && s[j+1] == '*':
				depth++
				j += 2
			case s[j] == '*' && s[j+1] == '/':
				depth--
				j += 2
				if depth == 0 {
					return tokSpace, j, nil
				}
			default:
				j++
			}
		}
		return tokSpace, len(s), errUnterminatedComment
	case c == ';':
		return tokSemi, i + 1, nil
	case c == '(':
		return tokOpen, i + 1, nil
	case c == ')':
		return tokClose, i + 1, nil
	case c == '\'':
		j, ok := quoted(s, i)
		if !ok {
			return tokOther, j, errUnterminatedString
		}
		return tokOther, j, nil
	case c == '"':
		j, ok := quoted(s, i)
		if !ok {
			return tokOther, j, errUnterminatedIdent
		}
		return tokOther, j, nil
	case (c == 'e' || c == 'E') && i+1 < len(s) && s[i+1] == '\'':
		// E'…': backslash escapes, and '' as well.
		for j := i + 2; j < len(s); j++ {
			switch s[j] {
			case '\\':
				j++
			case '\'':
				if j+1 < len(s) && s[j+1] == '\'' {
					j++
					continue
				}
				return tokOther, j + 1, nil
			}
		}
		return tokOther, len(s), errUnterminatedString
	case c == '$':
		if i+1 < len(s) && isDigit(s[i+1]) {
			// A parameter: $1.
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			return tokOther, j, nil
		}
		if tag, ok := dollarTag(s, i); ok {
			end := strings.Index(s[i+len(tag):], tag)
			if end < 0 {
				return tokOther, len(s), fmt.Errorf("unterminated dollar-quoted string (no closing %s)", tag)
			}
			return tokOther, i + len(tag) + end + len(tag), nil
		}
		return tokOther, i + 1, nil
	case isIdentStart(c):
		j := i + 1
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
		return tokWord, j, nil
	case isDigit(c):
		j := i + 1
		for j < len(s) && (isIdentChar(s[j]) || s[j] == '.') {
			j++
		}
		return tokOther, j, nil
	}
	return tokOther, i + 1, nil
}

// dollarTag returns the opening delimiter of a dollar-quoted string at
// s[i] ("$$" or "$tag$"), if there is one.
func dollarTag(s string, i int) (string, bool) {
	j := i + 1
	if j < len(s) && s[j] != '$' {
		if !isIdentStart(s[j]) {
			return "", false
		}
		for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j])) {
			j++
		}
	}
	if j < len(s) && s[j] == '$' {
		return s[i : j+1], true
	}
	return "", false
}

// postgresBoundary ends statements at a ';' outside parentheses and
// outside the BEGIN … END body of a function or procedure, as psql does.
type postgresBoundary struct {
	parens int
	// words holds the first words of the statement, to recognise CREATE
	// [OR REPLACE] FUNCTION|PROCEDURE.
	words [4]string
	nword int
	// begins counts the open BEGIN (and, inside one, CASE) of a routine
	// body.
	begins int
}

func (b *postgresBoundary) token(kind tokenKind, word string) bool {
	switch kind {
	case tokSemi:
		return b.parens == 0 && b.begins == 0
	case tokOpen:
		b.parens++
	case tokClose:
		if b.parens > 0 {
			b.parens--
		}
	case tokWord:
		if b.nword < len(b.words) {
			b.words[b.nword] = word
			b.nword++
		}
		if !b.routine() || b.parens > 0 {
			break
		}
		switch word {
		case "begin":
			b.begins++
		case "case":
			if b.begins > 0 {
				b.begins++
			}
		case "end":
			if b.begins > 0 {
				b.begins--
			}
		}
	}
	return false
}

// routine reports whether the statement creates a function or procedure.
func (b *postgresBoundary) routine() bool {
	w := b.words
	isRoutine := func(s string) bool { return s == "function" || s == "procedure" }
	return w[0] == "create" && (isRoutine(w[1]) || w[1] == "or" && w[2] == "replace" && isRoutine(w[3]))
}

func (b *postgresBoundary) complete() error {
	if b.begins > 0 {
		return errors.New("the BEGIN of a function or procedure body has no END")
	}
	return nil
}

func (b *postgresBoundary) reset() { *b = postgresBoundary{} }

// firstWords returns the first n unquoted words of a statement, lower-case.
func firstWords(sql string, d Dialect, n int) []string {
	scan := scanSQLite
	if d == Postgres {
		scan = scanPostgres
	}
	var words []string
	for i := 0; i < len(sql) && len(words) < n; {
		kind, j, err := scan(sql, i)
		if err != nil {
			break
		}
		switch kind {
		case tokWord:
			words = append(words, strings.ToLower(sql[i:j]))
		case tokSpace:
		default:
			return words
		}
		i = j
	}
	return words
}

// transactionControl reports whether a statement begins, commits or rolls
// back a transaction, which a migration may not do: the runner owns the
// transaction. Savepoints (SAVEPOINT, RELEASE, ROLLBACK TO) are allowed.
func transactionControl(sql string, d Dialect) bool {
	w := firstWords(sql, d, 3)
	if len(w) == 0 {
		return false
	}
	switch w[0] {
	case "begin", "commit", "end":
		return true
	case "rollback":
		return !slices.Contains(w[1:], "to")
	case "abort":
		return d == Postgres
	case "start":
		return d == Postgres && len(w) > 1 && w[1] == "transaction"
	}
	return false
}
