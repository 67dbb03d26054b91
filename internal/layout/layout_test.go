package layout

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/cairndb/cairn"

// allowed lists, for each package of the map, the project packages it may
// import directly (DESIGN.md, "Packages — data flows one way"). A package
// missing here may not be imported by any package that is listed.
var allowed = map[string][]string{
	"statemachine/command": {},
	"statemachine":         {"statemachine/command", "internal/sqlitecomplete"},
	"cluster":              {"statemachine", "statemachine/command"},
	"cluster/postgres":     {"cluster", "statemachine/command"},
	"backup/format":        {},
	"backup":               {"backup/format"},
	"backup/s3":            {"backup"},
	"restore":              {"backup", "backup/format"},
	"migrations":           {"internal/sqlitecomplete"},
	"server":               {"cluster", "statemachine/command", "backup"},
	"cmd/cairn/config":     {"backup", "backup/format", "restore"},
	"internal/layout":      {},
	"internal/backuptest":  {"backup"},
	"internal/s3test":      {"internal/testproc"},
	"internal/pgtest":      {"internal/testproc"},
	"internal/testproc":    {},
	// sqlitecomplete is sqlite3_complete's state machine, shared by the
	// statement analysis and the migration splitter.
	"internal/sqlitecomplete": {},
}

// unrestricted packages sit at the top (or outside) of the map.
var unrestricted = []string{"cmd/cairn", "tests/", "deploy"}

type pkg struct {
	ImportPath string
	Deps       []string
}

// TestLayout_NoUpwardImports runs `go list -deps` over the module and fails
// when a package depends, directly or not, on a project package the map
// does not let it reach.
func TestLayout_NoUpwardImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Deps", "-tags", "integration", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		seen++
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if isUnrestricted(rel) {
			continue
		}
		if _, ok := allowed[rel]; !ok {
			t.Errorf("package %s is not in the package map: add it to allowed (and DESIGN.md)", rel)
			continue
		}
		reach := closure(rel)
		var bad []string
		for _, d := range p.Deps {
			if !strings.HasPrefix(d, module+"/") {
				continue
			}
			dr := strings.TrimPrefix(d, module+"/")
			if !reach[dr] {
				bad = append(bad, dr)
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("%s depends on %s, which the package map does not allow", rel, strings.Join(bad, ", "))
		}
	}
	if seen < 5 {
		t.Fatalf("go list found %d packages; expected the whole module", seen)
	}
}

func isUnrestricted(rel string) bool {
	for _, u := range unrestricted {
		if rel == u || strings.HasPrefix(rel, u) || strings.HasPrefix(rel, u+"/") {
			return true
		}
	}
	return false
}

// closure returns every package rel may reach through allowed edges.
func closure(rel string) map[string]bool {
	reach := map[string]bool{}
	var visit func(string)
	visit = func(p string) {
		for _, d := range allowed[p] {
			if !reach[d] {
				reach[d] = true
				visit(d)
			}
		}
	}
	visit(rel)
	return reach
}

func TestClosure(t *testing.T) {
	got := closure("cluster")
	for _, want := range []string{"statemachine", "statemachine/command"} {
		if !got[want] {
			t.Errorf("closure(cluster) lacks %s", want)
		}
	}
	if got["server"] {
		t.Error("closure(cluster) reaches server")
	}
}
