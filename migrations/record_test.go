package migrations

import (
	"strings"
	"testing"
	"time"
)

// TestParseRecord reads rows as the backends return them: SQLite's text
// and integers, PostgreSQL's time.Time, and JSON's float64 and strings.
func TestParseRecord(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 30, 0, 123456000, time.UTC)
	tests := []struct {
		name string
		row  []any
	}{
		{"SQLite", []any{int64(7), "seven", "abc", "2026-11-23T10:30:00.123456Z", int64(1500)}},
		{"Postgres", []any{int64(7), "seven", "abc", at, int64(1500)}},
		{"PostgresText", []any{int64(7), "seven", "abc", "2026-11-23 10:30:00.123456+00", int64(1500)}},
		{"PostgresTextOffset", []any{int64(7), "seven", "abc", "2026-11-23 12:30:00.123456+02:00", int64(1500)}},
		{"JSONNumbers", []any{float64(7), "seven", "abc", "2026-11-23 10:30:00.123456 +0000 UTC", float64(1500)}},
		{"Strings", []any{"7", "seven", "abc", "2026-11-23T10:30:00.123456Z", "1500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := parseRecord(tt.row)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Version != 7 || rec.Name != "seven" || rec.Checksum != "abc" || !rec.AppliedAt.Equal(at) || rec.Duration != 1500*time.Millisecond {
				t.Errorf("record = %+v", rec)
			}
		})
	}
	t.Run("NoDuration", func(t *testing.T) {
		rec, err := parseRecord([]any{int64(1), "a", "b", at, nil})
		if err != nil || rec.Duration != 0 {
			t.Errorf("record = %+v, %v", rec, err)
		}
	})
	for _, bad := range [][]any{
		{int64(1), "a", "b", at},
		{1.5, "a", "b", at, nil},
		{int64(1), nil, "b", at, nil},
		{int64(1), "a", int64(2), at, nil},
		{int64(1), "a", "b", "yesterday", nil},
		{int64(1), "a", "b", at, "long"},
	} {
		if rec, err := parseRecord(bad); err == nil {
			t.Errorf("parseRecord(%v) = %+v, want an error", bad, rec)
		}
	}
}

func TestExcerpt(t *testing.T) {
	tests := map[string]string{
		"SELECT 1":                                 "SELECT 1",
		"CREATE TABLE t (\n  x INT\n)":             "CREATE TABLE t ( …",
		"SELECT '" + strings.Repeat("é", 40) + "'": "SELECT '" + strings.Repeat("é", 26) + " …",
	}
	for in, want := range tests {
		if got := excerpt(in); got != want {
			t.Errorf("excerpt(%q) = %q, want %q", in, got, want)
		}
	}
}
