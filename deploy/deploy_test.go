package deploy

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/cairndb/cairn/cmd/cairn/config"
)

// The tests here read the deployment files and hold them against the cairn
// binary: $CAIRN_BINARY when set, else one built into a temporary directory
// the first time a test needs it.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// cairnBinary returns the path of the cairn binary under test.
func cairnBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("CAIRN_BINARY"); p != "" {
			binPath = p
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "cairn-deploy-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "cairn")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/cairndb/cairn/cmd/cairn")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/cairn: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// cleanEnv is the environment cairn runs with in these tests: PATH and
// HOME only, so that no CAIRN_* variable of the test's own environment
// (CAIRN_BINARY, say) reaches the configuration.
func cleanEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	return append(env, extra...)
}

// effective is the configuration `cairn serve --validate-only` prints:
// section, then key, then value.
type effective map[string]map[string]any

// str returns the value of "section.key" as a string ("" when missing).
func (e effective) str(key string) string {
	section, name, _ := strings.Cut(key, ".")
	v, ok := e[section][name]
	if !ok {
		return ""
	}
	return fmt.Sprint(v)
}

// validateConfig runs `cairn serve --validate-only` on the TOML text with
// the given CAIRN_* settings, fails the test with the binary's output if
// it refuses the configuration, and returns the effective values.
func validateConfig(t *testing.T, tomlText string, env ...string) effective {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cairn.toml")
	if err := os.WriteFile(path, []byte(tomlText), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cairnBinary(t), "serve", "--validate-only", "--config", path)
	cmd.Env = cleanEnv(env...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cairn serve --validate-only with %s: %v\n%s", strings.Join(redactEnv(env), " "), err, out)
	}
	_, body, ok := bytes.Cut(out, []byte("\n"))
	if !ok {
		t.Fatalf("cairn serve --validate-only: unexpected output:\n%s", out)
	}
	var e effective
	if err := toml.Unmarshal(body, &e); err != nil {
		t.Fatalf("parse the effective configuration: %v\n%s", err, out)
	}
	return e
}

// redactEnv shortens KEY=VALUE settings to their names, for messages.
func redactEnv(env []string) []string {
	names := make([]string, len(env))
	for i, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		names[i] = k
	}
	return names
}

// configEnv maps every CAIRN_* variable that sets a configuration key to
// its key ("CAIRN_NODE_HTTP_ADDR" → "node.http_addr"), derived from
// config.Config's toml tags as the config package derives it.
func configEnv() map[string]string {
	out := map[string]string{}
	ct := reflect.TypeFor[config.Config]()
	for i := range ct.NumField() {
		sf := ct.Field(i)
		section := sf.Tag.Get("toml")
		if section == "" || sf.Type.Kind() != reflect.Struct {
			continue
		}
		for j := range sf.Type.NumField() {
			name := sf.Type.Field(j).Tag.Get("toml")
			if name == "" {
				continue
			}
			out["CAIRN_"+strings.ToUpper(section+"_"+name)] = section + "." + name
		}
	}
	return out
}

// checkEnvName fails the test unless name is a variable cairn accepts: a
// configuration key's variable, or one of config.IgnoredEnv.
func checkEnvName(t *testing.T, where, name string) {
	t.Helper()
	if _, ok := configEnv()[name]; ok || slices.Contains(config.IgnoredEnv, name) {
		return
	}
	t.Errorf("%s: %s is not a configuration key's variable", where, name)
}

// secretEnv returns made-up but valid values for the secret variables the
// deployment files take from a Secret or an environment file. keyActive is
// the configuration's encryption.key_active.
func secretEnv(t *testing.T, keyActive string) map[string]string {
	t.Helper()
	if keyActive == "" {
		t.Fatal("the configuration names no encryption.key_active")
	}
	return map[string]string{
		"CAIRN_CLUSTER_SECRET":  "deploy-test-cluster-secret-0123456789",
		"CAIRN_ENCRYPTION_KEYS": keyActive + "/" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)),
		"CAIRN_S3_KEY":          "DEPLOYTESTKEY",
		"CAIRN_S3_SECRET":       "deploy-test-s3-secret",
	}
}

// decodeTOML decodes a TOML document into v.
func decodeTOML(t *testing.T, doc string, v any) {
	t.Helper()
	if _, err := toml.Decode(doc, v); err != nil {
		t.Fatalf("parse TOML: %v", err)
	}
}

// tomlString reads "section.key" from a TOML document as a string.
func tomlString(t *testing.T, doc, key string) string {
	t.Helper()
	var m map[string]map[string]any
	decodeTOML(t, doc, &m)
	section, name, _ := strings.Cut(key, ".")
	s, _ := m[section][name].(string)
	return s
}

// port returns the port of a host:port address.
func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

// envRef matches a CAIRN_* variable name in prose or configuration.
var envRef = regexp.MustCompile(`\bCAIRN_[A-Z0-9_]*[A-Z0-9]\b`)

// TestFiles_EveryVariableIsAKey scans every deployment file and the README
// for CAIRN_* names: each must be a variable cairn accepts, so that no
// example teaches a name the binary refuses at start.
func TestFiles_EveryVariableIsAKey(t *testing.T) {
	seen := 0
	check := func(name string, data []byte) {
		for _, v := range envRef.FindAllString(string(data), -1) {
			seen++
			checkEnvName(t, name, v)
		}
	}
	err := fs.WalkDir(Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(Files, p)
		if err != nil {
			return err
		}
		check(p, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	check("README.md", readme)
	if seen < 10 {
		t.Fatalf("found only %d CAIRN_* references; is the scan broken?", seen)
	}
}

// TestFiles_LinksExist checks that the repository paths the files point
// readers to exist.
func TestFiles_LinksExist(t *testing.T) {
	for _, p := range []string{"../docs/disaster-recovery.md", "../go.mod", "docker/Dockerfile", "README.md"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%v", err)
		}
	}
	ss, err := fs.ReadFile(Files, "kubernetes/statefulset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ss, []byte("docs/disaster-recovery.md")) {
		t.Errorf("statefulset.yaml does not point to the runbook, docs/disaster-recovery.md")
	}
}
