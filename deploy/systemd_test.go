package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// unit is a parsed systemd unit file: section, then key, then every value
// the key is given (in order; systemd lets some keys repeat).
type unit map[string]map[string][]string

// get returns the last value of a key, "" if it is not set.
func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// parseUnit reads the INI syntax of systemd unit files: [Section] headers,
// Key=Value lines, comments with # or ;, backslash continuations.
func parseUnit(src string) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(src))
	n, pending := 0, ""
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			pending += body + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: bad section header %q", n, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: %q is not Key=Value inside a section", n, line)
		}
		k = strings.TrimSpace(k)
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	return u, sc.Err()
}

func mustUnit(t *testing.T) (string, unit) {
	t.Helper()
	src, err := fs.ReadFile(Files, "systemd/cairn.service")
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(src))
	if err != nil {
		t.Fatalf("cairn.service: %v", err)
	}
	return string(src), u
}

func systemdConfig(t *testing.T) string {
	t.Helper()
	b, err := fs.ReadFile(Files, "systemd/cairn.toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSystemdUnit checks the unit's settings: a dedicated user, secrets
// from an environment file, the hardening the issue asks for, a writable
// data directory that holds node.data_dir, restarts on failure, enough
// file descriptors, and time for the leadership hand-over on stop.
func TestSystemdUnit(t *testing.T) {
	_, u := mustUnit(t)
	s := "Service"
	for key, want := range map[string]string{
		"ProtectSystem":   "strict",
		"Restart":         "on-failure",
		"NoNewPrivileges": "yes",
		"PrivateTmp":      "yes",
		"ProtectHome":     "yes",
		"KillSignal":      "SIGTERM",
	} {
		if got := u.get(s, key); got != want {
			t.Errorf("%s=%q, want %q", key, got, want)
		}
	}
	if user := u.get(s, "User"); user == "" || user == "root" || user == "0" {
		t.Errorf("User=%q: run as a dedicated user", user)
	}
	if u.get(s, "DynamicUser") == "yes" {
		t.Errorf("DynamicUser: the data must stay owned by one stable user")
	}
	if n, err := strconv.Atoi(u.get(s, "LimitNOFILE")); err != nil || n < 4096 {
		t.Errorf("LimitNOFILE=%q, want a number of at least 4096", u.get(s, "LimitNOFILE"))
	}
	envFile := u.get(s, "EnvironmentFile")
	if envFile == "" || strings.HasPrefix(envFile, "-") {
		t.Errorf("EnvironmentFile=%q: the secrets file must be required", envFile)
	}

	argv := strings.Fields(u.get(s, "ExecStart"))
	if len(argv) != 4 || argv[1] != "serve" || argv[2] != "--config" {
		t.Fatalf("ExecStart=%q, want BINARY serve --config FILE", u.get(s, "ExecStart"))
	}
	if filepath.Dir(envFile) != filepath.Dir(argv[3]) {
		t.Errorf("the secrets (%s) and the configuration (%s) should live side by side", envFile, argv[3])
	}

	dataDir := tomlString(t, systemdConfig(t), "node.data_dir")
	writable := strings.Fields(strings.Join(u[s]["ReadWritePaths"], " "))
	if !slices.ContainsFunc(writable, func(p string) bool { return dataDir == p || strings.HasPrefix(dataDir, p+"/") }) {
		t.Errorf("ReadWritePaths=%v does not cover node.data_dir %s", writable, dataDir)
	}
	if state := u.get(s, "StateDirectory"); !strings.HasPrefix(dataDir, "/var/lib/"+state+"/") {
		t.Errorf("StateDirectory=%s does not hold node.data_dir %s", state, dataDir)
	}

	stop, err := time.ParseDuration(u.get(s, "TimeoutStopSec"))
	if err != nil || stop < 30*time.Second {
		t.Errorf("TimeoutStopSec=%q: want at least 30s for the HTTP drain and the hand-over", u.get(s, "TimeoutStopSec"))
	}
	if u.get("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("WantedBy=%q", u.get("Install", "WantedBy"))
	}
}

// TestSystemdUnit_Verify runs systemd-analyze verify on the unit, with
// ExecStart pointed at the binary under test (verify wants it to exist),
// and fails on any warning, such as an unknown or misspelt key. Where
// systemd-analyze supports --offline, it also checks the hardening score.
func TestSystemdUnit_Verify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; TestSystemdUnit checks the keys")
	}
	src, u := mustUnit(t)
	bin := strings.Fields(u.get("Service", "ExecStart"))[0]
	dir := t.TempDir()
	unitPath := filepath.Join(dir, "cairn.service")
	if err := os.WriteFile(unitPath, []byte(strings.ReplaceAll(src, "ExecStart="+bin, "ExecStart="+cairnBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, analyze, "verify", "--man=no", unitPath)
	out, err := cmd.CombinedOutput()
	// verify also reports problems of unrelated units on the machine;
	// only lines about this unit count.
	var ours []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.Contains(line, unitPath) || strings.Contains(line, "cairn.service") {
			ours = append(ours, line)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, strings.Join(ours, "\n"))
	}

	out, err = exec.CommandContext(ctx, analyze, "security", "--offline=true", "--no-pager", unitPath).CombinedOutput()
	if err != nil && strings.Contains(string(out), "offline") {
		t.Logf("systemd-analyze security --offline is not supported here: %s", out)
		return
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f (0 is locked down, 10 is exposed)", score)
	if score > 2.0 {
		t.Errorf("exposure %.1f: the hardening has regressed (it was 1.5)", score)
	}
}

// TestSystemd_Config runs the VM configuration with the example environment
// file through the binary, once per node id.
func TestSystemd_Config(t *testing.T) {
	cfg := systemdConfig(t)
	data, err := fs.ReadFile(Files, "systemd/cairn.env.example")
	if err != nil {
		t.Fatal(err)
	}
	secrets := secretEnv(t, tomlString(t, cfg, "encryption.key_active"))
	var env []string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("cairn.env.example: %q is not KEY=value", line)
		}
		checkEnvName(t, "cairn.env.example", k)
		if v == "REPLACE-ME" {
			if v, ok = secrets[k]; !ok {
				t.Fatalf("no test value for %s", k)
			}
		}
		if k != "CAIRN_NODE_ID" {
			env = append(env, k+"="+v)
		}
	}
	for id := 1; id <= 3; id++ {
		e := validateConfig(t, cfg, append(env, "CAIRN_NODE_ID="+strconv.Itoa(id))...)
		if got := e.str("node.http_advertise"); !strings.HasPrefix(got, fmt.Sprintf("cairn%d.", id)) {
			t.Errorf("node %d advertises %q", id, got)
		}
	}
}
