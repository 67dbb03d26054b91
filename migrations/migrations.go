package migrations

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Dialect is the SQL dialect migrations are loaded and applied in.
type Dialect string

// The dialects of Cairn's two backends.
const (
	// SQLite is the dialect of Raft mode (the embedded, replicated SQLite).
	SQLite Dialect = "sqlite"
	// Postgres is the dialect of Postgres mode.
	Postgres Dialect = "postgres"
)

// Migration is one versioned migration file, loaded for one dialect.
type Migration struct {
	// Version orders migrations; it is the number the file name starts
	// with.
	Version int64
	// Name is the part of the file name between the version and the
	// extension: "create_users" for 0001_create_users.sql.
	Name string
	// File is the name of the file the migration was loaded from (the
	// dialect variant when there is one).
	File string
	// SQL is the file's content.
	SQL string
	// Checksum is the hex SHA-256 of the file's bytes. An applied migration
	// whose file no longer has the checksum it was applied with is refused.
	Checksum string
	// Statements are the file's statements, in order, without their ';'.
	Statements []string
	// Lines holds, for each statement, the line of the file it starts on
	// (from 1).
	Lines []int
}

// fileName is the form of a migration file's name: version, name, and an
// optional dialect before ".sql".
var fileName = regexp.MustCompile(`^([0-9]+)_([A-Za-z0-9_-]+?)(?:\.(sqlite|postgres))?\.sql$`)

// Load reads the migration files at the root of fsys for dialect d, sorted
// by version.
//
// A migration file is named NNNN_name.sql, or NNNN_name.<dialect>.sql for a
// variant of one dialect (sqlite or postgres): for that dialect the variant
// replaces the generic file of the same version, and it is ignored for the
// other dialect. A variant without a generic file is a migration of its
// dialect only. Files that do not end in .sql, and directories, are
// ignored; any other .sql file is an error naming it, and so are two files
// of one version for one dialect, a variant whose name differs from its
// generic file's, a statement that controls transactions (BEGIN, COMMIT,
// END, ROLLBACK: the runner owns the transaction) and a file that cannot be
// split into statements. Every problem found is reported, not just the
// first.
func Load(fsys fs.FS, d Dialect) ([]Migration, error) {
	if d != SQLite && d != Postgres {
		return nil, fmt.Errorf("unknown dialect %q (want %q or %q)", d, SQLite, Postgres)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations directory: %w", err)
	}
	type candidates struct {
		generic, variant []string // file names
	}
	byVersion := map[int64]*candidates{}
	var problems []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		file := e.Name()
		m := fileName.FindStringSubmatch(file)
		if m == nil {
			problems = append(problems, fmt.Errorf("%s: not a migration file name: want NNNN_name.sql, NNNN_name.sqlite.sql or NNNN_name.postgres.sql (name: letters, digits, _ and -)", file))
			continue
		}
		version, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || version < 1 {
			problems = append(problems, fmt.Errorf("%s: the version must be a number from 1 to %d", file, int64(1<<63-1)))
			continue
		}
		if m[3] != "" && Dialect(m[3]) != d {
			continue
		}
		c := byVersion[version]
		if c == nil {
			c = &candidates{}
			byVersion[version] = c
		}
		if m[3] == "" {
			c.generic = append(c.generic, file)
		} else {
			c.variant = append(c.variant, file)
		}
	}

	var out []Migration
	for version, c := range byVersion {
		dup := false
		for _, files := range [][]string{c.generic, c.variant} {
			if len(files) > 1 {
				sort.Strings(files)
				problems = append(problems, fmt.Errorf("%s: %d files for version %d; each version needs exactly one (and at most one variant per dialect)", strings.Join(files, ", "), len(files), version))
				dup = true
			}
		}
		if dup {
			continue
		}
		file := ""
		if len(c.variant) > 0 {
			file = c.variant[0]
		} else {
			file = c.generic[0]
		}
		name := fileName.FindStringSubmatch(file)[2]
		if len(c.variant) > 0 && len(c.generic) > 0 {
			if g := fileName.FindStringSubmatch(c.generic[0])[2]; g != name {
				problems = append(problems, fmt.Errorf("%s: a variant of %s must have the same name (%q, not %q)", file, c.generic[0], g, name))
				continue
			}
		}
		mig, err := loadFile(fsys, file, version, name, d)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		out = append(out, mig)
	}
	if len(problems) > 0 {
		sort.Slice(problems, func(i, j int) bool { return problems[i].Error() < problems[j].Error() })
		return nil, fmt.Errorf("load migrations: %w", errors.Join(problems...))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// loadFile reads one migration file and splits it into statements.
func loadFile(fsys fs.FS, file string, version int64, name string, d Dialect) (Migration, error) {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return Migration{}, fmt.Errorf("%s: %w", file, err)
	}
	sum := sha256.Sum256(b)
	m := Migration{Version: version, Name: name, File: file, SQL: string(b), Checksum: hex.EncodeToString(sum[:])}
	pieces, err := split(m.SQL, d)
	if err != nil {
		return Migration{}, fmt.Errorf("%s: %w", file, err)
	}
	for i, p := range pieces {
		if transactionControl(p.sql, d) {
			return Migration{}, fmt.Errorf("%s: statement %d (line %d: %s) controls the transaction: remove it, each migration runs in a transaction of its own", file, i+1, p.line, excerpt(p.sql))
		}
		m.Statements = append(m.Statements, p.sql)
		m.Lines = append(m.Lines, p.line)
	}
	return m, nil
}

// excerpt shortens a statement for a message: its first line, at most 60
// bytes of it (cut on a rune boundary).
func excerpt(sql string) string {
	const max = 60
	s, _, cut := strings.Cut(sql, "\n")
	s = strings.TrimSpace(s)
	if len(s) > max {
		i := max
		for i > 0 && s[i]&0xC0 == 0x80 {
			i--
		}
		s, cut = s[:i], true
	}
	if cut {
		s += " …"
	}
	return s
}
