package sqlitecomplete

import (
	"strings"
	"testing"
)

// ends feeds space-separated words (";" for a semicolon) and returns the
// indexes of the semicolons that end a statement.
func ends(words string) []int {
	var m Machine
	var out []int
	for i, w := range strings.Fields(words) {
		c := WordClass(w)
		if w == ";" {
			c = Semi
		}
		if m.Next(c) {
			out = append(out, i)
		}
	}
	return out
}

func TestMachine(t *testing.T) {
	for _, tc := range []struct {
		words string
		want  []int
	}{
		{"SELECT 1 ; SELECT 2 ;", []int{2, 5}},
		{"CREATE TRIGGER t AFTER INSERT ON x BEGIN INSERT INTO y ; END ;", []int{13}},
		{"CREATE TEMP TRIGGER t BEGIN SELECT CASE WHEN 1 THEN 2 END ; END ; SELECT 1 ;", []int{14, 17}},
		{"EXPLAIN CREATE TRIGGER t BEGIN SELECT 1 ; END ;", []int{9}},
		{"CREATE TABLE end ( a ) ;", []int{6}},
	} {
		got := ends(tc.words)
		if len(got) != len(tc.want) {
			t.Errorf("%q: ends at %v, want %v", tc.words, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: ends at %v, want %v", tc.words, got, tc.want)
			}
		}
	}
	var m Machine
	for _, w := range strings.Fields("CREATE TRIGGER t BEGIN SELECT 1 ;") {
		c := WordClass(w)
		if w == ";" {
			c = Semi
		}
		m.Next(c)
	}
	if !m.InTrigger() {
		t.Error("an unclosed trigger body is not reported")
	}
	m.Reset()
	if m.InTrigger() {
		t.Error("Reset left the machine in a trigger")
	}
}
