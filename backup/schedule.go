package backup

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule says when backups run.
type Schedule interface {
	// Next returns the first activation time after t.
	Next(t time.Time) time.Time
}

// ParseSchedule parses a cron expression in Hiqlite's seven-field form
// "sec min hour day_of_month month day_of_week year" (e.g.
// "0 30 2 * * * *"), or the six-field form without the year, or the
// classic five-field form "min hour dom month dow". robfig/cron parses the
// fields up to the day of the week; the year field ("*", "2027",
// "2026-2030", "2026,2028", "*/2") filters its times. Times are in loc.
func ParseSchedule(expr string, loc *time.Location) (Schedule, error) {
	if loc == nil {
		loc = time.UTC
	}
	fields := strings.Fields(expr)
	var years *yearSet
	switch len(fields) {
	case 5:
		fields = append([]string{"0"}, fields...)
	case 6:
	case 7:
		ys, err := parseYears(fields[6])
		if err != nil {
			return nil, fmt.Errorf("cron %q: year field: %w", expr, err)
		}
		years, fields = ys, fields[:6]
	default:
		return nil, fmt.Errorf("cron %q: want 5, 6 or 7 fields (sec min hour day_of_month month day_of_week [year]), got %d", expr, len(fields))
	}
	parser := cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)
	s, err := parser.Parse("CRON_TZ=" + loc.String() + " " + strings.Join(fields, " "))
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w", expr, err)
	}
	if years == nil {
		return s, nil
	}
	return &yearSchedule{inner: s, years: years}, nil
}

// yearSchedule skips the activations of inner outside the allowed years.
type yearSchedule struct {
	inner Schedule
	years *yearSet
}

func (y *yearSchedule) Next(t time.Time) time.Time {
	for range 1000 {
		n := y.inner.Next(t)
		if n.IsZero() || y.years.has(n.Year()) {
			return n
		}
		if n.Year() > y.years.max {
			return time.Time{}
		}
		// Jump to the start of the next year rather than step through
		// every activation of this one.
		t = time.Date(n.Year()+1, 1, 1, 0, 0, 0, 0, n.Location()).Add(-time.Second)
	}
	return time.Time{}
}

// yearSet is the year field: nil allow means every year.
type yearSet struct {
	allow map[int]bool
	step  int // with "*/N": years divisible by N
	max   int
}

func (s *yearSet) has(y int) bool {
	switch {
	case s.allow != nil:
		return s.allow[y]
	case s.step > 0:
		return y%s.step == 0
	}
	return true
}

const maxYear = 2999

func parseYears(field string) (*yearSet, error) {
	if field == "*" || field == "?" {
		return &yearSet{max: maxYear}, nil
	}
	if step, ok := strings.CutPrefix(field, "*/"); ok {
		n, err := strconv.Atoi(step)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad step %q", step)
		}
		return &yearSet{step: n, max: maxYear}, nil
	}
	set := &yearSet{allow: map[int]bool{}}
	for _, part := range strings.Split(field, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parseYear(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parseYear(hi); err != nil {
				return nil, err
			}
		}
		if b < a {
			return nil, fmt.Errorf("range %q goes backwards", part)
		}
		for y := a; y <= b; y++ {
			set.allow[y] = true
		}
		set.max = max(set.max, b)
	}
	return set, nil
}

func parseYear(s string) (int, error) {
	y, err := strconv.Atoi(s)
	if err != nil || y < 1970 || y > maxYear {
		return 0, fmt.Errorf("bad year %q (want 1970..%d)", s, maxYear)
	}
	return y, nil
}
