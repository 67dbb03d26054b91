package backup

import (
	"strings"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone database")
	}
	cases := []struct {
		name string
		expr string
		loc  *time.Location
		want []time.Time
	}{
		{"SevenFieldsDefault", "0 30 2 * * * *", nil, []time.Time{
			time.Date(2026, 11, 24, 2, 30, 0, 0, time.UTC), time.Date(2026, 11, 25, 2, 30, 0, 0, time.UTC)}},
		{"EveryTenSeconds", "*/10 * * * * * *", nil, []time.Time{
			base.Add(10 * time.Second), base.Add(20 * time.Second)}},
		{"SixFields", "0 0 */6 * * *", nil, []time.Time{
			time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)}},
		{"FiveFields", "15 3 * * *", nil, []time.Time{
			time.Date(2026, 11, 24, 3, 15, 0, 0, time.UTC)}},
		{"YearFilter", "0 0 0 1 1 * 2028-2029", nil, []time.Time{
			time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC), {}}},
		{"TimeZone", "0 30 2 * * * *", berlin, []time.Time{
			time.Date(2026, 11, 24, 1, 30, 0, 0, time.UTC)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSchedule(c.expr, c.loc)
			if err != nil {
				t.Fatal(err)
			}
			at := base
			for i, want := range c.want {
				got := s.Next(at)
				if !got.Equal(want) {
					t.Fatalf("activation %d = %v, want %v", i, got, want)
				}
				at = got
			}
		})
	}
}

func TestParseSchedule_Invalid(t *testing.T) {
	for _, expr := range []string{"", "* * *", "61 * * * * * *", "0 30 2 * * * 1800", "0 30 2 * * * 2030-2020", "0 30 2 * * foo *", "a b c d e f g h"} {
		if _, err := ParseSchedule(expr, nil); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", expr)
		} else if !strings.Contains(err.Error(), "cron") {
			t.Errorf("ParseSchedule(%q) error does not say cron: %v", expr, err)
		}
	}
}
