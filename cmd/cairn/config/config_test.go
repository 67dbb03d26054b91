package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// testSecret is a valid cluster secret for tests.
const testSecret = "s3cr3t-0123456789abcdef"

// writeConfig writes a TOML file in a temporary directory and returns its
// path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cairn.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load runs Load on text (no file when empty) and env, with a hostname
// that has no ordinal unless env sets CAIRN_NODE_HOSTNAME.
func load(t *testing.T, text string, env ...string) (*Config, error) {
	t.Helper()
	path := ""
	if text != "" {
		path = writeConfig(t, text)
	}
	return Load(path, append([]string{"CAIRN_NODE_HOSTNAME=test"}, env...))
}

// mustLoad is load that fails the test on any error.
func mustLoad(t *testing.T, text string, env ...string) *Config {
	t.Helper()
	c, err := load(t, text, env...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// problems returns the problems of a *ValidationError, failing the test on
// any other error.
func problems(t *testing.T, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v (%T), want *ValidationError", err, err)
	}
	return ve.Problems
}

// wantProblem fails the test unless err holds a problem for key whose
// formatted line contains every one of want.
func wantProblem(t *testing.T, err error, key string, want ...string) {
	t.Helper()
	for _, p := range problems(t, err) {
		if p.Key != key {
			continue
		}
		line := p.String()
		if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) }) {
			return
		}
	}
	t.Fatalf("no problem for %q containing %q in:\n%v", key, want, err)
}

func TestLoad_Defaults(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	h, _ := os.Hostname()
	wantID, ok := IDFromHostname(h)
	if !ok {
		wantID = "1"
	}
	want := Config{
		Node: Node{
			ID:            wantID,
			DataDir:       "./cairn-data",
			HTTPAddr:      "127.0.0.1:4001",
			RaftAddr:      "127.0.0.1:4002",
			HTTPAdvertise: "127.0.0.1:4001",
			RaftAdvertise: "127.0.0.1:4002",
		},
		Cluster: Cluster{
			Name:              "cairn",
			Nodes:             []string{wantID + " 127.0.0.1:4002 127.0.0.1:4001"},
			SnapshotThreshold: 8192,
			SnapshotInterval:  30 * time.Second,
			TrailingLogs:      10240,
			ApplyTimeout:      10 * time.Second,
			HeartbeatTimeout:  500 * time.Millisecond,
			ElectionTimeout:   500 * time.Millisecond,
		},
		DB: DB{
			MaxConnections: 5,
			ConnectTimeout: 5 * time.Second,
			AutoMigrate:    true,
		},
		Backup: Backup{Cron: "0 30 2 * * * *", Timezone: "UTC", KeepDaysLocal: 3, KeepDays: 30, Encrypt: true, FailureCriticalAfter: 26 * time.Hour},
		S3:     S3{Region: "us-east-1"},
		HTTP: HTTP{
			MaxBodySize:     10 << 20,
			ShutdownTimeout: 15 * time.Second,
			ReadTimeout:     30 * time.Second,
			WriteTimeout:    60 * time.Second,
			IdleTimeout:     120 * time.Second,
			RequestTimeout:  30 * time.Second,
			MaxConcurrent:   64,
			QueueTimeout:    250 * time.Millisecond,
		},
		Auth: Auth{Metrics: true},
		Log:  Log{Level: "info", Format: "text"},
	}
	want.origins = c.origins
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load(\"\", nil) =\n%s\nwant\n%s", c, &want)
	}
	for _, f := range keys.fields {
		if o := c.Origin(f.key); o.Source != SourceDefault {
			t.Errorf("Origin(%s) = %v, want a default", f.key, o)
		}
	}
	if c.PostgresMode() {
		t.Error("PostgresMode() = true, want false")
	}
	members, err := c.Members()
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	if want := []Member{{wantID, "127.0.0.1:4002", "127.0.0.1:4001"}}; !reflect.DeepEqual(members, want) {
		t.Errorf("Members() = %v, want %v", members, want)
	}
}

func TestLoad_File(t *testing.T) {
	c, err := Load("testdata/cairn.toml", []string{"TEST_CLUSTER_SECRET=" + testSecret})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		Node: Node{
			ID:            "2",
			Hostname:      "ignored-0",
			DataDir:       "/var/lib/cairn",
			HTTPAddr:      "0.0.0.0:4001",
			RaftAddr:      "0.0.0.0:4002",
			HTTPAdvertise: "cairn-1.cairn-headless:4001",
			RaftAdvertise: "cairn-1.cairn-headless:4002",
		},
		Cluster: Cluster{
			Name: "cairn",
			Nodes: []string{
				"1 cairn-0.cairn-headless:4002 cairn-0.cairn-headless:4001",
				"2 cairn-1.cairn-headless:4002 cairn-1.cairn-headless:4001",
				"3 cairn-2.cairn-headless:4002 cairn-2.cairn-headless:4001",
			},
			Secret:            testSecret,
			SnapshotThreshold: 1000,
			SnapshotInterval:  10 * time.Second,
			TrailingLogs:      500,
			ApplyTimeout:      3 * time.Second,
			HeartbeatTimeout:  500 * time.Millisecond,
			ElectionTimeout:   2 * time.Second,
		},
		DB: DB{
			URL:            "sqlite://",
			MaxConnections: 7,
			ConnectTimeout: 2 * time.Second,
			AutoMigrate:    false,
			MigrationsDir:  "/etc/cairn/migrations",
		},
		Backup: Backup{Cron: "0 30 2 * * * *", Timezone: "UTC", KeepDaysLocal: 3, KeepDays: 30, Encrypt: true, FailureCriticalAfter: 26 * time.Hour},
		S3:     S3{Region: "us-east-1"},
		HTTP: HTTP{
			MaxBodySize:     1_000_000,
			ShutdownTimeout: 20 * time.Second,
			ReadTimeout:     5 * time.Second,
			WriteTimeout:    6 * time.Second,
			IdleTimeout:     7 * time.Second,
			RequestTimeout:  8 * time.Second,
			MaxConcurrent:   64,
			QueueTimeout:    250 * time.Millisecond,
		},
		Auth: Auth{Metrics: true},
		Log:  Log{Level: "debug", Format: "json"},
	}
	want.origins = c.origins
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load =\n%s\nwant\n%s", c, &want)
	}

	for key, want := range map[string]string{
		"node.id":             "file testdata/cairn.toml:4",
		"cluster.nodes":       "file testdata/cairn.toml:12",
		"cluster.secret":      "file testdata/cairn.toml:17",
		"log.format":          "file testdata/cairn.toml:42",
		"node.raft_advertise": "default: this node's entry in cluster.nodes",
	} {
		if got := c.Origin(key).String(); got != want {
			t.Errorf("Origin(%s) = %q, want %q", key, got, want)
		}
	}
	members, err := c.Members()
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	if len(members) != 3 || members[2] != (Member{"3", "cairn-2.cairn-headless:4002", "cairn-2.cairn-headless:4001"}) {
		t.Errorf("Members() = %v", members)
	}
}

func TestLoad_FileErrors(t *testing.T) {
	t.Run("Missing", func(t *testing.T) {
		c, err := Load(filepath.Join(t.TempDir(), "nope.toml"), nil)
		if c != nil || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load = %v, %v; want nil, a not-exist error", c, err)
		}
	})
	t.Run("Syntax", func(t *testing.T) {
		path := writeConfig(t, "[node]\nid = \"1\nx = 2\n")
		c, err := Load(path, nil)
		if c != nil || err == nil || !strings.Contains(err.Error(), "parse "+path) || !strings.Contains(err.Error(), "line 2") {
			t.Fatalf("Load = %v, %v; want nil, a parse error naming the file and line 2", c, err)
		}
	})
	t.Run("SectionNotTable", func(t *testing.T) {
		_, err := load(t, "node = 5\n")
		if err == nil || !strings.Contains(err.Error(), "parse ") {
			t.Fatalf("Load error = %v, want a parse error", err)
		}
	})
}

func TestLoad_EnvOverridesFile(t *testing.T) {
	c := mustLoad(t, `
[node]
http_addr = "127.0.0.1:5001"
data_dir = "/from/file"

[log]
level = "debug"
`, "CAIRN_NODE_HTTP_ADDR=127.0.0.1:6001", "CAIRN_LOG_LEVEL=WARN", "CAIRN_HTTP_MAX_BODY_SIZE=2KiB",
		"CAIRN_DB_AUTO_MIGRATE=false", "CAIRN_CLUSTER_TRAILING_LOGS=7", "CAIRN_CLUSTER_APPLY_TIMEOUT=1m30s")

	if c.Node.HTTPAddr != "127.0.0.1:6001" || c.Node.DataDir != "/from/file" {
		t.Errorf("node = %+v", c.Node)
	}
	if c.Log.Level != "warn" || c.Log.SlogLevel() != slog.LevelWarn {
		t.Errorf("log.level = %q, want warn", c.Log.Level)
	}
	if c.HTTP.MaxBodySize != 2048 || c.DB.AutoMigrate || c.Cluster.TrailingLogs != 7 || c.Cluster.ApplyTimeout != 90*time.Second {
		t.Errorf("typed values not applied: %s", c)
	}
	if o := c.Origin("node.http_addr"); o != (Origin{Source: SourceEnv, Name: "CAIRN_NODE_HTTP_ADDR"}) {
		t.Errorf("Origin(node.http_addr) = %+v", o)
	}
	if o := c.Origin("node.data_dir"); o.Source != SourceFile || o.Line != 4 {
		t.Errorf("Origin(node.data_dir) = %+v, want file line 4", o)
	}
	if c.Node.HTTPAdvertise != "127.0.0.1:6001" {
		t.Errorf("http_advertise = %q, want the listen address from env", c.Node.HTTPAdvertise)
	}

	t.Run("LaterEntryWins", func(t *testing.T) {
		c := mustLoad(t, "", "CAIRN_LOG_FORMAT=text", "CAIRN_LOG_FORMAT=json")
		if c.Log.Format != "json" {
			t.Errorf("log.format = %q, want json", c.Log.Format)
		}
	})
}

func TestLoad_Expand(t *testing.T) {
	for _, tt := range []struct {
		name string
		file string
		env  []string
		want string // node.data_dir
	}{
		{"Set", `node.data_dir = "${DIR}/data"`, []string{"DIR=/srv"}, "/srv/data"},
		{"DefaultUnset", `node.data_dir = "${DIR:-/def}"`, nil, "/def"},
		{"DefaultEmpty", `node.data_dir = "${DIR:-/def}"`, []string{"DIR="}, "/def"},
		{"DefaultSet", `node.data_dir = "${DIR:-/def}"`, []string{"DIR=/set"}, "/set"},
		{"RequiredEmpty", `node.data_dir = "/a${EMPTY}b"`, []string{"EMPTY="}, "/ab"},
		{"Dollar", `node.data_dir = "/cost$$5/${A}$${B}"`, []string{"A=x"}, "/cost$5/x${B}"},
		{"LoneDollar", `node.data_dir = "/a$b/c$"`, nil, "/a$b/c$"},
		{"EnvValue", ``, []string{"CAIRN_NODE_DATA_DIR=${BASE:-/base}/n${ID}", "ID=2"}, "/base/n2"},
		{"EnvDollar", ``, []string{"CAIRN_NODE_DATA_DIR=/p$$q"}, "/p$q"},
		{"DefaultIsLiteral", `node.data_dir = "${X:-$$}"`, nil, "$$"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.file, tt.env...)
			if c.Node.DataDir != tt.want {
				t.Errorf("data_dir = %q, want %q", c.Node.DataDir, tt.want)
			}
		})
	}

	t.Run("ListElements", func(t *testing.T) {
		c := mustLoad(t, `
[node]
id = "${ID:-1}"
[cluster]
nodes = ["1 ${H0}:4002 ${H0}:4001", "2 h1:4002 h1:4001"]
secret = "${SECRET}"
`, "H0=h0", "SECRET="+testSecret)
		want := []string{"1 h0:4002 h0:4001", "2 h1:4002 h1:4001"}
		if !reflect.DeepEqual(c.Cluster.Nodes, want) || c.Cluster.Secret.Value() != testSecret {
			t.Errorf("nodes = %q, secret ok = %v", c.Cluster.Nodes, c.Cluster.Secret.Value() == testSecret)
		}
	})
	t.Run("NonStringKeys", func(t *testing.T) {
		c := mustLoad(t, `
[db]
max_connections = "${CONNS:-9}"
auto_migrate = "${MIGRATE}"
connect_timeout = "${TIMEOUT:-3s}"
[http]
max_body_size = "${BODY:-4KiB}"
`, "MIGRATE=false")
		if c.DB.MaxConnections != 9 || c.DB.AutoMigrate || c.DB.ConnectTimeout != 3*time.Second || c.HTTP.MaxBodySize != 4096 {
			t.Errorf("db = %+v, http.max_body_size = %d", c.DB, c.HTTP.MaxBodySize)
		}
	})
	t.Run("ListFromOneString", func(t *testing.T) {
		c := mustLoad(t, `
node.id = "1"
cluster.nodes = "${NODES}"
cluster.secret = "`+testSecret+`"`,
			"NODES=1 a:4002 a:4001, 2 b:4002 b:4001")
		if len(c.Cluster.Nodes) != 2 {
			t.Errorf("nodes = %q, want 2 entries", c.Cluster.Nodes)
		}
	})

	for _, tt := range []struct {
		name string
		file string
		env  []string
		key  string
		want []string
	}{
		{"MissingInFile", `node.data_dir = "${DATA_DIR}"`, nil, "node.data_dir",
			[]string{"node.data_dir (file ", ".toml:1)", "variable DATA_DIR is not set"}},
		{"MissingInEnv", ``, []string{"CAIRN_LOG_LEVEL=${LEVEL}"}, "log.level",
			[]string{"log.level (env CAIRN_LOG_LEVEL)", "variable LEVEL is not set"}},
		{"MissingInList", "[cluster]\nnodes = [\"1 a:1 a:2\", \"${N2}\"]", nil, "cluster.nodes",
			[]string{"element 2", "variable N2 is not set"}},
		{"Unterminated", `node.data_dir = "${DIR"`, nil, "node.data_dir", []string{"unterminated ${"}},
		{"BadName", `node.data_dir = "${A-B}"`, nil, "node.data_dir", []string{"bad variable reference"}},
		{"EmptyName", `node.data_dir = "${}"`, nil, "node.data_dir", []string{"bad variable reference"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file, tt.env...)
			wantProblem(t, err, tt.key, tt.want...)
		})
	}
}

func TestExpand(t *testing.T) {
	lookup := func(name string) (string, bool) {
		v, ok := map[string]string{"A": "a", "E": "", "N_1": "n"}[name]
		return v, ok
	}
	for _, tt := range []struct{ in, want, err string }{
		{"", "", ""},
		{"plain", "plain", ""},
		{"${A}", "a", ""},
		{"x${A}y${N_1}z", "xaynz", ""},
		{"${E}", "", ""},
		{"${E:-d}", "d", ""},
		{"${U:-d e}", "d e", ""},
		{"${U:-}", "", ""},
		{"${A:-d}", "a", ""},
		{"$$", "$", ""},
		{"$$$$", "$$", ""},
		{"$${A}", "${A}", ""},
		{"$", "$", ""},
		{"a$b", "a$b", ""},
		{"${U}", "", "variable U is not set"},
		{"${A", "", "unterminated"},
		{"${1A}", "", "bad variable reference"},
		{"${A B}", "", "bad variable reference"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := expand(tt.in, lookup)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("expand(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestLoad_UnknownKey(t *testing.T) {
	for _, tt := range []struct {
		name string
		file string
		key  string
		want []string
	}{
		{"Typo", "[node]\nid = \"1\"\nhtttp_addr = \"x\"\n", "node.htttp_addr",
			[]string{".toml:3)", "unknown key", `did you mean "node.http_addr"`}},
		{"Dotted", "node.htttp_addr = \"x\"\n", "node.htttp_addr", []string{".toml:1)", "unknown key"}},
		{"NoSuggestion", "[log]\ncolour = true\n", "log.colour", []string{"unknown key in section [log]"}},
		{"Section", "[nodes]\nid = \"1\"\n", "nodes", []string{".toml:1)", "unknown section", "did you mean [node]"}},
		{"UnknownSection", "[s4]\nbucket = \"b\"\n", "s4", []string{"unknown section", "the sections are node, cluster"}},
		{"TopLevelKey", "http_addr = \"x\"\n", "http_addr", []string{`did you mean "node.http_addr"`}},
		{"CaseMatters", "[Node]\nid = \"1\"\n", "Node", []string{"did you mean [node]"}},
		{"KeyCaseMatters", "[node]\nHTTP_ADDR = \"127.0.0.1:9\"\n", "node.HTTP_ADDR", []string{`did you mean "node.http_addr"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file)
			wantProblem(t, err, tt.key, tt.want...)
		})
	}

	t.Run("ReportedOncePerTable", func(t *testing.T) {
		_, err := load(t, "[foo]\na = 1\nb = 2\n")
		if ps := problems(t, err); len(ps) != 1 || ps[0].Key != "foo" {
			t.Fatalf("problems = %v, want one for foo", ps)
		}
	})
	t.Run("CaseMismatchNotApplied", func(t *testing.T) {
		c, err := load(t, "[node]\nHTTP_ADDR = \"127.0.0.1:9\"\n")
		if len(problems(t, err)) != 1 || c.Node.HTTPAddr != "127.0.0.1:4001" {
			t.Fatalf("http_addr = %q, err = %v", c.Node.HTTPAddr, err)
		}
	})
}

func TestLoad_UnknownEnv(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  string
		want string
	}{
		{"KnownSection", "CAIRN_NODE_FOO=1", `env CAIRN_NODE_FOO: unknown variable: section node has no key "foo"`},
		{"Typo", "CAIRN_LOG_LEVL=debug", "env CAIRN_LOG_LEVL: unknown variable; did you mean CAIRN_LOG_LEVEL?"},
		{"UnknownSection", "CAIRN_FOO_BAR=1", `env CAIRN_FOO_BAR: unknown variable: there is no section "foo"`},
		{"NoSection", "CAIRN_X=1", `env CAIRN_X: unknown variable: there is no section "x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, "", tt.env)
			ps := problems(t, err)
			if len(ps) != 1 || !strings.HasPrefix(ps[0].String(), tt.want) || ps[0].Key != "" {
				t.Fatalf("problems = %q, want %q", ps, tt.want)
			}
		})
	}

	t.Run("Ignored", func(t *testing.T) {
		mustLoad(t, "", "CAIRN_CONFIG=/etc/cairn.toml", "CAIRN=1", "CAIRNX_FOO=1", "cairn_node_foo=1",
			// Kubernetes service links for Services named cairn and cairn-http.
			"CAIRN_SERVICE_HOST=10.0.0.1", "CAIRN_SERVICE_PORT=4001", "CAIRN_SERVICE_PORT_HTTP=4001",
			"CAIRN_PORT=tcp://10.0.0.1:4001", "CAIRN_PORT_4001_TCP=tcp://10.0.0.1:4001",
			"CAIRN_PORT_4001_TCP_PROTO=tcp", "CAIRN_PORT_4001_TCP_PORT=4001", "CAIRN_PORT_4001_TCP_ADDR=10.0.0.1",
			"CAIRN_HTTP_SERVICE_HOST=10.0.0.2", "CAIRN_HTTP_PORT_80_TCP_ADDR=10.0.0.2")
	})
}

func TestLoad_InvalidValues(t *testing.T) {
	three := `
[node]
id = "1"
[cluster]
nodes = ["1 a:4002 a:4001", "2 b:4002 b:4001", "3 c:4002 c:4001"]
`
	for _, tt := range []struct {
		name string
		file string
		env  []string
		key  string
		want []string
	}{
		// Types.
		{"DurationFile", "[cluster]\napply_timeout = \"10 seconds\"\n", nil, "cluster.apply_timeout",
			[]string{"(file ", `"10 seconds" is not a duration`}},
		{"DurationInteger", "[cluster]\napply_timeout = 10\n", nil, "cluster.apply_timeout",
			[]string{`want a duration string such as "5s", found integer 10`}},
		{"DurationEnv", "", []string{"CAIRN_HTTP_READ_TIMEOUT=5"}, "http.read_timeout",
			[]string{"(env CAIRN_HTTP_READ_TIMEOUT)", `"5" is not a duration`}},
		{"SizeUnit", "[http]\nmax_body_size = \"10 megs\"\n", nil, "http.max_body_size",
			[]string{`"10 megs" is not a size: unknown unit "megs"`}},
		{"SizeEnv", "", []string{"CAIRN_HTTP_MAX_BODY_SIZE=lots"}, "http.max_body_size", []string{"is not a size"}},
		{"SizeFloat", "[http]\nmax_body_size = 1.5\n", nil, "http.max_body_size", []string{"found float 1.5"}},
		{"BoolEnv", "", []string{"CAIRN_DB_AUTO_MIGRATE=yes please"}, "db.auto_migrate",
			[]string{"(env CAIRN_DB_AUTO_MIGRATE)", `"yes please" is not a boolean`}},
		{"BoolFile", "[db]\nauto_migrate = 1\n", nil, "db.auto_migrate", []string{"want a boolean, found integer 1"}},
		{"IntEnv", "", []string{"CAIRN_DB_MAX_CONNECTIONS=five"}, "db.max_connections", []string{`"five" is not an integer`}},
		{"UintNegativeFile", "[cluster]\ntrailing_logs = -1\n", nil, "cluster.trailing_logs", []string{"-1 is out of range"}},
		{"UintNegativeEnv", "", []string{"CAIRN_CLUSTER_SNAPSHOT_THRESHOLD=-5"}, "cluster.snapshot_threshold",
			[]string{`"-5" is not a non-negative integer`}},
		{"StringGotBool", "[node]\ndata_dir = true\n", nil, "node.data_dir", []string{"want a string, found boolean true"}},
		{"ListGotInt", "[cluster]\nnodes = 3\n", nil, "cluster.nodes", []string{"want an array of strings, found integer 3"}},
		{"ListElement", "[cluster]\nnodes = [\"1 a:1 a:2\", 2]\n", nil, "cluster.nodes", []string{"element 2 is integer 2"}},

		// Checks.
		{"Level", "", []string{"CAIRN_LOG_LEVEL=verbose"}, "log.level", []string{`"verbose" is not one of debug, info, warn, error`}},
		{"Format", "[log]\nformat = \"xml\"\n", nil, "log.format", []string{`"xml" is not one of text, json`}},
		{"HostPortNoPort", "", []string{"CAIRN_NODE_HTTP_ADDR=localhost"}, "node.http_addr",
			[]string{`node.http_addr (env CAIRN_NODE_HTTP_ADDR): "localhost" is not host:port`}},
		{"HostPortBadPort", "", []string{"CAIRN_NODE_RAFT_ADDR=127.0.0.1:http"}, "node.raft_addr", []string{"the port must be a number"}},
		{"HostPortBadHost", "", []string{"CAIRN_NODE_HTTP_ADVERTISE=bad host:4001"}, "node.http_advertise",
			[]string{"neither an IP address nor a host name"}},
		{"SameListenAddrs", "", []string{"CAIRN_NODE_RAFT_ADDR=127.0.0.1:4001"}, "node.raft_addr", []string{"also node.http_addr"}},
		{"AdvertiseNeeded", "", []string{"CAIRN_NODE_HTTP_ADDR=0.0.0.0:4001"}, "node.http_advertise",
			[]string{`node.http_addr "0.0.0.0:4001" listens on all interfaces`}},
		{"AdvertiseNeededIPv6", "", []string{"CAIRN_NODE_RAFT_ADDR=[::]:4002"}, "node.raft_advertise", []string{"listens on all interfaces"}},
		{"AdvertiseNeededEmptyHost", "", []string{"CAIRN_NODE_RAFT_ADDR=:4002"}, "node.raft_advertise", []string{"listens on all interfaces"}},
		{"AdvertiseUnspecified", "", []string{"CAIRN_NODE_HTTP_ADVERTISE=0.0.0.0:4001"}, "node.http_advertise",
			[]string{"every interface"}},
		{"AdvertiseDiffersFromEntry", three, []string{"CAIRN_CLUSTER_SECRET=" + testSecret, "CAIRN_NODE_RAFT_ADVERTISE=z:4002"},
			"node.raft_advertise", []string{`"z:4002" differs from this node's entry in cluster.nodes ("a:4002")`}},
		{"NodesFieldCount", "", []string{"CAIRN_CLUSTER_NODES=1 a:4002"}, "cluster.nodes",
			[]string{`entry 1 "1 a:4002": want "ID RAFT_ADDR HTTP_ADDR", found 2 fields`}},
		{"NodesBadAddr", "[cluster]\nnodes = [\"1 a:4002 a\"]\n", nil, "cluster.nodes", []string{`entry 1: http address "a" is not host:port`}},
		{"NodesUnroutable", "", []string{"CAIRN_CLUSTER_NODES=1 0.0.0.0:4002 a:4001"}, "cluster.nodes",
			[]string{"entry 1: raft address", "every interface"}},
		{"NodesBadID", "", []string{"CAIRN_CLUSTER_NODES=n/1 a:4002 a:4001"}, "cluster.nodes", []string{"entry 1: id"}},
		{"NodesDuplicateID", "", []string{"CAIRN_NODE_ID=1", "CAIRN_CLUSTER_SECRET=" + testSecret,
			"CAIRN_CLUSTER_NODES=1 a:4002 a:4001,1 b:4002 b:4001"}, "cluster.nodes", []string{`entry 2: id "1" is also entry 1's`}},
		{"NodesDuplicateAddr", "", []string{"CAIRN_NODE_ID=1", "CAIRN_CLUSTER_SECRET=" + testSecret,
			"CAIRN_CLUSTER_NODES=1 a:4002 a:4001,2 A:4002 b:4001"}, "cluster.nodes", []string{`entry 2: address "A:4002" is also used by entry 1`}},
		{"NodesPortZero", "", []string{"CAIRN_NODE_ID=1", "CAIRN_CLUSTER_SECRET=" + testSecret,
			"CAIRN_CLUSTER_NODES=1 a:0 a:4001,2 b:4002 b:4001"}, "cluster.nodes", []string{"port 0"}},
		{"OwnIDMissing", three, []string{"CAIRN_NODE_ID=4", "CAIRN_CLUSTER_SECRET=" + testSecret}, "cluster.nodes",
			[]string{`this node's id "4" (node.id, env CAIRN_NODE_ID) is not in the list`}},
		{"SecretMissing", three, nil, "cluster.secret",
			[]string{"cluster.secret (default): required when cluster.nodes has 3 members (set CAIRN_CLUSTER_SECRET)"}},
		{"SecretShort", "", []string{"CAIRN_CLUSTER_SECRET=short"}, "cluster.secret",
			[]string{"(env CAIRN_CLUSTER_SECRET): too short: at least 16 characters"}},
		{"ElectionShorterThanHeartbeat", "[cluster]\nheartbeat_timeout = \"2s\"\n", nil, "cluster.election_timeout",
			[]string{"500ms is shorter than cluster.heartbeat_timeout (2s)"}},
		{"HeartbeatTooShort", "", []string{"CAIRN_CLUSTER_HEARTBEAT_TIMEOUT=1ms"}, "cluster.heartbeat_timeout", []string{"too short"}},
		{"BadCron", "", []string{"CAIRN_BACKUP_CRON=0 30 25 * * * *"}, "backup.cron", []string{"cron", "0 30 25"}},
		{"CronFieldCount", "[backup]\ncron = \"* * *\"\n", nil, "backup.cron", []string{"want 5, 6 or 7 fields"}},
		{"BadTimezone", "", []string{"CAIRN_BACKUP_TIMEZONE=Mars/Olympus"}, "backup.timezone", []string{"Mars/Olympus"}},
		{"NegativeRetention", "", []string{"CAIRN_BACKUP_KEEP_DAYS=-1"}, "backup.keep_days", []string{"negative"}},
		{"S3WithoutKeys", "[s3]\nbucket = \"b\"\n", nil, "encryption.keys", []string{"unencrypted", "backup.encrypt = false"}},
		{"S3URLWithoutBucket", "", []string{"CAIRN_S3_URL=http://127.0.0.1:7070"}, "s3.bucket", []string{"required when s3.url"}},
		{"S3KeyWithoutSecret", "[s3]\nbucket = \"b\"\nkey = \"AK\"\n[backup]\nencrypt = false\n", nil, "s3.secret", []string{"go together"}},
		{"S3BadURL", "[s3]\nbucket = \"b\"\nurl = \"ftp://x\"\n[backup]\nencrypt = false\n", nil, "s3.url", []string{"not an http(s) URL"}},
		{"BadKey", "", []string{"CAIRN_ENCRYPTION_KEYS=k1/not-base64!", "CAIRN_ENCRYPTION_KEY_ACTIVE=k1"}, "encryption.keys", []string{"k1"}},
		{"ActiveKeyMissing", "", []string{"CAIRN_ENCRYPTION_KEYS=k1/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "CAIRN_ENCRYPTION_KEY_ACTIVE=k2"}, "encryption.keys", []string{"k2"}},
		{"SnapshotThresholdZero", "", []string{"CAIRN_CLUSTER_SNAPSHOT_THRESHOLD=0"}, "cluster.snapshot_threshold", []string{"at least 1"}},
		{"NegativeDuration", "", []string{"CAIRN_HTTP_IDLE_TIMEOUT=-1s"}, "http.idle_timeout", []string{"-1s is negative"}},
		{"ZeroShutdown", "", []string{"CAIRN_HTTP_SHUTDOWN_TIMEOUT=0s"}, "http.shutdown_timeout", []string{"must be positive"}},
		{"ZeroBodySize", "", []string{"CAIRN_HTTP_MAX_BODY_SIZE=0"}, "http.max_body_size", []string{"must be positive"}},
		{"MaxConnections", "", []string{"CAIRN_DB_MAX_CONNECTIONS=0"}, "db.max_connections", []string{"at least 1"}},
		{"DBScheme", "", []string{"CAIRN_DB_URL=mysql://u:p@h/db"}, "db.url", []string{`unsupported scheme "mysql"`}},
		{"DBNotURL", "", []string{"CAIRN_DB_URL=host=h password=pw"}, "db.url", []string{"is not a URL"}},
		{"DataDirEmpty", "", []string{"CAIRN_NODE_DATA_DIR="}, "node.data_dir", []string{"must not be empty"}},
		{"NodeID", "", []string{"CAIRN_NODE_ID=a b"}, "node.id", []string{`"a b" may contain only`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.file, tt.env...)
			wantProblem(t, err, tt.key, tt.want...)
			if c == nil {
				t.Fatal("Load returned no Config with its ValidationError")
			}
		})
	}
}

func TestLoad_SeveralProblems(t *testing.T) {
	_, err := load(t, `
[node]
htttp_addr = "x"
[cluster]
apply_timeout = "soon"
`, "CAIRN_LOG_LEVEL=loud", "CAIRN_LOG_FORMAT=xml", "CAIRN_NODE_FOO=1", "CAIRN_DB_AUTO_MIGRATE=maybe")
	ps := problems(t, err)
	var got []string
	for _, p := range ps {
		got = append(got, p.Key)
	}
	want := []string{"node.htttp_addr", "cluster.apply_timeout", "db.auto_migrate", "", "log.level", "log.format"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problem keys = %q, want %q; error:\n%v", got, want, err)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("Error() has %d lines, want %d:\n%s", len(lines), len(want), err)
	}
}

func TestLoad_Hostname(t *testing.T) {
	for _, tt := range []struct {
		name string
		file string
		env  []string
		want string
	}{
		{"OrdinalZero", "", []string{"CAIRN_NODE_HOSTNAME=cairn-0"}, "1"},
		{"OrdinalTwo", "", []string{"CAIRN_NODE_HOSTNAME=cairn-2"}, "3"},
		{"NoOrdinal", "", []string{"CAIRN_NODE_HOSTNAME=web"}, "1"},
		{"MultiDigit", "", []string{"CAIRN_NODE_HOSTNAME=my-db-10"}, "11"},
		{"ExplicitIDWins", "", []string{"CAIRN_NODE_HOSTNAME=cairn-4", "CAIRN_NODE_ID=9"}, "9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.file, tt.env...)
			if c.Node.ID != tt.want {
				t.Errorf("node.id = %q, want %q", c.Node.ID, tt.want)
			}
		})
	}
	t.Run("FromFile", func(t *testing.T) {
		c, err := Load(writeConfig(t, "[node]\nhostname = \"cairn-4\"\n"), nil)
		if err != nil || c.Node.ID != "5" {
			t.Fatalf("Load = node.id %q, %v; want 5", c.Node.ID, err)
		}
	})
	t.Run("OriginNamesHostname", func(t *testing.T) {
		c := mustLoad(t, "", "CAIRN_NODE_HOSTNAME=cairn-2")
		if got, want := c.Origin("node.id").String(), `default: from hostname "cairn-2"`; got != want {
			t.Errorf("Origin(node.id) = %q, want %q", got, want)
		}
	})
}

func TestIDFromHostname(t *testing.T) {
	for _, tt := range []struct {
		host string
		want string
		ok   bool
	}{
		{"cairn-0", "1", true},
		{"cairn-2", "3", true},
		{"my-db-10", "11", true},
		{"cairn-2.cairn-headless.default.svc.cluster.local", "3", true},
		{"cairn-007", "8", true},
		{"web", "", false},
		{"web1", "", false},
		{"cairn-", "", false},
		{"-3", "", false},
		{"cairn-x", "", false},
		{"cairn-+1", "", false},
		{"cairn-99999999999999999999", "", false},
		{"", "", false},
	} {
		t.Run(tt.host, func(t *testing.T) {
			got, ok := IDFromHostname(tt.host)
			if got != tt.want || ok != tt.ok {
				t.Errorf("IDFromHostname(%q) = %q, %v; want %q, %v", tt.host, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestLoad_ClusterNodesEnv(t *testing.T) {
	want := []string{"1 127.0.0.1:4002 127.0.0.1:4001", "2 127.0.0.2:4002 127.0.0.2:4001", "3 127.0.0.3:4002 127.0.0.3:4001"}
	for _, tt := range []struct{ name, value string }{
		{"Commas", "1 127.0.0.1:4002 127.0.0.1:4001,2 127.0.0.2:4002 127.0.0.2:4001,3 127.0.0.3:4002 127.0.0.3:4001"},
		{"CommasAndBlanks", " 1 127.0.0.1:4002 127.0.0.1:4001 , 2 127.0.0.2:4002 127.0.0.2:4001,, 3 127.0.0.3:4002 127.0.0.3:4001 ,"},
		{"Newlines", "1 127.0.0.1:4002 127.0.0.1:4001\n2 127.0.0.2:4002 127.0.0.2:4001\n3 127.0.0.3:4002 127.0.0.3:4001\n"},
		{"CRLF", "1 127.0.0.1:4002 127.0.0.1:4001\r\n2 127.0.0.2:4002 127.0.0.2:4001\r\n\r\n3 127.0.0.3:4002 127.0.0.3:4001"},
		{"Mixed", "1 127.0.0.1:4002 127.0.0.1:4001,\n  2 127.0.0.2:4002 127.0.0.2:4001\n,3 127.0.0.3:4002 127.0.0.3:4001"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, "", "CAIRN_CLUSTER_NODES="+tt.value, "CAIRN_NODE_ID=2", "CAIRN_CLUSTER_SECRET="+testSecret)
			if !reflect.DeepEqual(c.Cluster.Nodes, want) {
				t.Fatalf("nodes = %q, want %q", c.Cluster.Nodes, want)
			}
			if c.Node.RaftAdvertise != "127.0.0.2:4002" || c.Node.HTTPAdvertise != "127.0.0.2:4001" {
				t.Errorf("advertise = %q, %q; want node 2's entry", c.Node.RaftAdvertise, c.Node.HTTPAdvertise)
			}
		})
	}
}

func TestLoad_PostgresMode(t *testing.T) {
	for _, url := range []string{"postgres://u:pw@db:5432/app?sslmode=disable", "postgresql://db/app", "POSTGRES://db/app"} {
		t.Run(url, func(t *testing.T) {
			// Listening on every interface needs no advertise address, and
			// Raft settings are not checked, in Postgres mode.
			c := mustLoad(t, "", "CAIRN_DB_URL="+url, "CAIRN_NODE_HTTP_ADDR=0.0.0.0:4001",
				"CAIRN_CLUSTER_NODES=1 a:1 a:2,2 b:1 b:2", "CAIRN_CLUSTER_HEARTBEAT_TIMEOUT=0s")
			if !c.PostgresMode() {
				t.Error("PostgresMode() = false")
			}
		})
	}
	for _, url := range []string{"", "sqlite://", "sqlite:///var/db"} {
		if c := mustLoad(t, "", "CAIRN_DB_URL="+url); c.PostgresMode() {
			t.Errorf("PostgresMode() = true for %q", url)
		}
	}
}

func TestConfig_Members(t *testing.T) {
	c := &Config{Cluster: Cluster{Nodes: []string{"1 a:1 a:2", "2 b:1"}}}
	if _, err := c.Members(); err == nil || !strings.Contains(err.Error(), "entry 2") {
		t.Errorf("Members() error = %v, want one about entry 2", err)
	}
}

// TestLoad_SecretsNeverShown loads configurations holding secrets, valid
// and not, and looks for the secrets in everything the package produces.
func TestLoad_SecretsNeverShown(t *testing.T) {
	const (
		secret = "SUPERSECRET-0123456789"
		short  = "SHORTSECR"
		dbPass = "DBPASSWORD-x9"
	)
	secrets := []string{secret, short, dbPass}
	for _, tt := range []struct {
		name string
		file string
		env  []string
	}{
		{"ValidEnv", "", []string{"CAIRN_CLUSTER_SECRET=" + secret, "CAIRN_DB_URL=postgres://app:" + dbPass + "@db/app"}},
		{"ValidFile", "[cluster]\nsecret = \"" + secret + "\"\n[db]\nurl = \"postgres://app:" + dbPass + "@db/app\"\n", nil},
		{"Expanded", "[cluster]\nsecret = \"${S}\"\n", []string{"S=" + secret}},
		{"ShortEnv", "", []string{"CAIRN_CLUSTER_SECRET=" + short}},
		{"ShortFile", "[cluster]\nsecret = \"" + short + "\"\n", nil},
		{"WrongTypeFile", "[cluster]\nsecret = [\"" + secret + "\"]\n", nil},
		{"BadReference", "", []string{"CAIRN_CLUSTER_SECRET=" + secret + "${oops"}},
		{"MissingReference", "", []string{"CAIRN_CLUSTER_SECRET=" + secret + "${NOPE}"}},
		{"PasswordInQuery", "", []string{"CAIRN_DB_URL=postgres://db/app?password=" + dbPass + "&sslpassword=" + dbPass}},
		{"BadURL", "", []string{"CAIRN_DB_URL=postgres://app:" + dbPass + "%zz@db:port/app"}},
		{"BadScheme", "", []string{"CAIRN_DB_URL=mysql://app:" + dbPass + "@db/app"}},
		{"DSN", "", []string{"CAIRN_DB_URL=host=db password=" + dbPass}},
		{"ReusedElsewhere", "", []string{"CAIRN_CLUSTER_SECRET=" + secret, "CAIRN_NODE_HTTP_ADDR=" + secret}},
		{"ThreeNodes", "[node]\nid = \"1\"\n[cluster]\nnodes = [\"1 a:1 a:2\", \"2 b:1 b:2\", \"3 c:1 c:2\"]\n",
			[]string{"CAIRN_CLUSTER_SECRET=" + short}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.file, tt.env...)
			var out []string
			if err != nil {
				out = append(out, err.Error(), fmt.Sprint(err))
				for _, p := range problems(t, err) {
					out = append(out, p.String(), fmt.Sprintf("%+v", p))
				}
			}
			if c != nil {
				js, jerr := json.Marshal(c)
				if jerr != nil {
					t.Fatalf("json.Marshal: %v", jerr)
				}
				var logged bytes.Buffer
				slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "config", c, "cluster", c.Cluster, "secret", c.Cluster.Secret)
				slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c, "cluster", c.Cluster)
				out = append(out, c.Redacted(), c.String(), string(js), logged.String(),
					fmt.Sprint(c), fmt.Sprint(*c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%#v", *c),
					fmt.Sprintf("%v %+v %#v %s %q", c.Cluster, c.Cluster, c.Cluster, c.Cluster.Secret, c.Cluster.Secret))
				if c.Validate() != nil {
					out = append(out, c.Validate().Error())
				}
				if _, merr := c.Members(); merr != nil {
					out = append(out, merr.Error())
				}
			}
			for _, o := range out {
				for _, s := range secrets {
					if strings.Contains(o, s) {
						t.Fatalf("secret %q shown in:\n%s", s, o)
					}
				}
			}
		})
	}

	t.Run("Shown", func(t *testing.T) {
		c := mustLoad(t, "", "CAIRN_CLUSTER_SECRET="+secret, "CAIRN_DB_URL=postgres://app:"+dbPass+"@db/app?sslmode=require")
		r := c.Redacted()
		for _, want := range []string{
			`secret = "[redacted]"`, "# env CAIRN_CLUSTER_SECRET",
			`url = "postgres://app:[redacted]@db/app?sslmode=require"`,
		} {
			if !strings.Contains(r, want) {
				t.Errorf("Redacted() lacks %q:\n%s", want, r)
			}
		}
		if c.Cluster.Secret.Value() != secret || !strings.Contains(c.DB.URL, dbPass) {
			t.Error("the Config itself must keep the real secrets")
		}
	})
}

func TestConfig_Redacted(t *testing.T) {
	c, err := Load("testdata/cairn.toml", []string{"TEST_CLUSTER_SECRET=" + testSecret})
	if err != nil {
		t.Fatal(err)
	}
	r := c.Redacted()
	for _, want := range []string{"[node]\n", "[log]\n", `max_body_size = "1000000B"`, `write_timeout = "6s"`,
		`# file testdata/cairn.toml:34`, `nodes = ["1 cairn-0.cairn-headless:4002 cairn-0.cairn-headless:4001", `} {
		if !strings.Contains(r, want) {
			t.Errorf("Redacted() lacks %q:\n%s", want, r)
		}
	}

	// The output loads back to the same configuration, the secret aside.
	c2, err := Load(writeConfig(t, r), []string{"CAIRN_CLUSTER_SECRET=" + testSecret})
	if err != nil {
		t.Fatalf("Load(Redacted()): %v\n%s", err, r)
	}
	c2.origins, c.origins = nil, nil
	if len(c2.Encryption.Keys) == 0 {
		c2.Encryption.Keys = nil // "keys = []" loads as an empty list
	}
	if len(c2.Auth.Users) == 0 {
		c2.Auth.Users = nil // "users = []" too
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip:\n%s\nwant\n%s", c2, c)
	}

	var m map[string]map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, c)), &m); err != nil {
		t.Fatalf("MarshalJSON is not JSON: %v", err)
	}
	if m["http"]["max_body_size"] != 1e6 || m["cluster"]["apply_timeout"] != "3s" || m["cluster"]["secret"] != "[redacted]" {
		t.Errorf("JSON = %v", m)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Size
		err  bool
	}{
		{"0", 0, false},
		{"1048576", 1 << 20, false},
		{"512B", 512, false},
		{"10KB", 10_000, false},
		{"10kb", 10_000, false},
		{"10MB", 10_000_000, false},
		{"1GB", 1_000_000_000, false},
		{"2TB", 2_000_000_000_000, false},
		{"10KiB", 10 << 10, false},
		{"1MiB", 1 << 20, false},
		{"10MiB", 10 << 20, false},
		{"1.5GiB", 3 << 29, false},
		{" 4 mib ", 4 << 20, false},
		{"10M", 0, true},
		{"10 megs", 0, true},
		{"MiB", 0, true},
		{"", 0, true},
		{"-1", 0, true},
		{"1.2.3MB", 0, true},
		{"9999999999TiB", 0, true},
		{"99999999999999999999", 0, true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestSize_String(t *testing.T) {
	for _, tt := range []struct {
		in   Size
		want string
	}{{0, "0B"}, {1500, "1500B"}, {1024, "1KiB"}, {10 << 20, "10MiB"}, {3 << 29, "1536MiB"}, {1 << 40, "1TiB"}} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if back, err := ParseSize(tt.in.String()); err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v", tt.in.String(), back, err)
		}
	}
}

// TestSchema checks what the reflection derives from Config's tags.
func TestSchema(t *testing.T) {
	want := map[string]string{
		"node.id":             "CAIRN_NODE_ID",
		"node.http_addr":      "CAIRN_NODE_HTTP_ADDR",
		"node.raft_advertise": "CAIRN_NODE_RAFT_ADVERTISE",
		"node.hostname":       "CAIRN_NODE_HOSTNAME",
		"cluster.nodes":       "CAIRN_CLUSTER_NODES",
		"cluster.secret":      "CAIRN_CLUSTER_SECRET",
		"db.url":              "CAIRN_DB_URL",
		"http.max_body_size":  "CAIRN_HTTP_MAX_BODY_SIZE",
		"log.level":           "CAIRN_LOG_LEVEL",
	}
	for key, env := range want {
		f := keys.byKey[key]
		if f == nil || f.env != env {
			t.Errorf("key %s: field %+v, want env %s", key, f, env)
		}
	}
	if got := keys.byKey["cluster.secret"].redact; got != redactAll {
		t.Errorf("cluster.secret redaction = %v", got)
	}
	if got := keys.byKey["auth.users"].redact; got != redactAll {
		t.Errorf("auth.users redaction = %v", got)
	}
	if got := keys.byKey["db.url"].redact; got != redactPass {
		t.Errorf("db.url redaction = %v", got)
	}
	if len(keys.fields) != 53 {
		t.Errorf("%d keys, want 53", len(keys.fields))
	}

	type bad struct {
		S struct {
			X map[string]string `toml:"x"`
		} `toml:"s"`
	}
	if _, err := newSchema(reflect.TypeFor[bad]()); err == nil {
		t.Error("newSchema accepted an unsupported type")
	}
	type badDefault struct {
		S struct {
			D time.Duration `toml:"d" default:"soon"`
		} `toml:"s"`
	}
	if _, err := newSchema(reflect.TypeFor[badDefault]()); err == nil {
		t.Error("newSchema accepted a bad default")
	}
}

func TestKeyLines(t *testing.T) {
	src := `# comment
top = 1
[node]
id = "1"
"quoted key" = 2
dotted.sub = 3
text = """
fake = 4
"""
list = [
  "x = y",
  [1, 2],
]
after = 5

[[arr]]
a = 6
[ 'lit'.b ]
c = 7
`
	got := keyLines(src)
	for key, line := range map[string]int{
		"top": 2, "node": 3, "node.id": 4, `node."quoted key"`: 5, "node.dotted": 6, "node.dotted.sub": 6,
		"node.text": 7, "node.list": 10, "node.after": 14, "arr": 16, "arr.a": 17, "lit.b": 18, "lit.b.c": 19,
	} {
		if got[key] != line {
			t.Errorf("line of %s = %d, want %d", key, got[key], line)
		}
	}
	if _, ok := got["node.fake"]; ok {
		t.Error("a line inside a multi-line string was taken for a key")
	}
}

// TestChanged lists exactly the keys whose values differ, secrets included.
func TestChanged(t *testing.T) {
	a := mustLoad(t, "", "CAIRN_LOG_LEVEL=info", "CAIRN_S3_SECRET=one")
	b := mustLoad(t, "", "CAIRN_LOG_LEVEL=debug", "CAIRN_S3_SECRET=two")
	if got := Changed(a, b); !reflect.DeepEqual(got, []string{"s3.secret", "log.level"}) {
		t.Fatalf("Changed = %v", got)
	}
	if got := Changed(a, a); len(got) != 0 {
		t.Fatalf("Changed(a, a) = %v", got)
	}
}
