package deploy

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper-case: FROM, RUN, COPY, ...
	Args string // the rest of the line
	Line int
}

// stage is one FROM and the instructions after it.
type stage struct {
	Base  string // the image, build arguments expanded
	Name  string // the AS name, if any
	Instr []instruction
}

// dockerfile is a parsed Dockerfile: its global ARGs and its stages.
type dockerfile struct {
	Args   map[string]string
	Stages []stage
}

// knownInstructions are the instructions of the Dockerfile reference.
var knownInstructions = []string{"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}

// parseDockerfile reads the subset of Dockerfile syntax our file uses:
// comments, parser directives, backslash continuations, ARG before FROM,
// and multi-stage FROM ... AS name. An unknown instruction is an error.
func parseDockerfile(src string) (*dockerfile, error) {
	df := &dockerfile{Args: map[string]string{}}
	var cur strings.Builder
	start := 0
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		if !slices.Contains(knownInstructions, in.Cmd) {
			return fmt.Errorf("line %d: unknown instruction %s", in.Line, cmd)
		}
		switch {
		case in.Cmd == "FROM":
			f := strings.Fields(in.Args)
			st := stage{Base: expandArgs(f[0], df.Args)}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			} else if len(f) != 1 {
				return fmt.Errorf("line %d: FROM %s", in.Line, in.Args)
			}
			df.Stages = append(df.Stages, st)
		case len(df.Stages) == 0:
			if in.Cmd != "ARG" {
				return fmt.Errorf("line %d: %s before the first FROM", in.Line, in.Cmd)
			}
			k, v, _ := strings.Cut(in.Args, "=")
			df.Args[k] = v
		default:
			st := &df.Stages[len(df.Stages)-1]
			st.Instr = append(st.Instr, in)
		}
		return nil
	}
	for i, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue // comments (and parser directives), blank lines
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(df.Stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return df, nil
}

var argRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// expandArgs replaces ${NAME} and $NAME with the build arguments' defaults.
func expandArgs(s string, args map[string]string) string {
	return argRef.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		return args[name]
	})
}

// all returns the stage's instructions of one kind.
func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.Instr {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// last returns the stage's last instruction of one kind.
func (s stage) last(cmd string) (instruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instruction{}, false
	}
	return all[len(all)-1], true
}

// execForm decodes a JSON-array argument (ENTRYPOINT ["a", "b"]).
func execForm(args string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(args), &out); err != nil {
		return nil, fmt.Errorf("not the exec (JSON array) form: %s", args)
	}
	return out, nil
}

func mustDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	src, err := fs.ReadFile(Files, "docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df, err := parseDockerfile(string(src))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return df
}

// TestDockerfile checks the image: a multi-stage build of a static,
// trimmed binary, a minimal non-root final image that exposes both ports,
// keeps its data on a volume and runs `cairn serve`; and that it agrees
// with the StatefulSet (user, ports, data mount, config path).
func TestDockerfile(t *testing.T) {
	df := mustDockerfile(t)
	k := mustLoad(t)
	c := mustContainer(t, k)
	if len(df.Stages) < 2 {
		t.Fatalf("%d stages; want a build stage and a final stage", len(df.Stages))
	}
	build, final := df.Stages[0], df.Stages[len(df.Stages)-1]

	t.Run("Build", func(t *testing.T) {
		gomod, err := os.ReadFile("../go.mod")
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
		if m == nil {
			t.Fatal("go.mod has no go directive")
		}
		if want := "golang:" + string(m[1]) + "-"; !strings.HasPrefix(build.Base, want) {
			t.Errorf("build stage FROM %s; want %s… (go.mod's go version)", build.Base, want)
		}
		var built bool
		for _, run := range build.all("RUN") {
			if strings.Contains(run.Args, "go build") {
				built = true
				for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/cairn"} {
					if !strings.Contains(run.Args, want) {
						t.Errorf("line %d: go build without %s", run.Line, want)
					}
				}
			}
		}
		if !built {
			t.Errorf("the build stage runs no go build")
		}
	})

	t.Run("Final", func(t *testing.T) {
		if !strings.HasPrefix(final.Base, "gcr.io/distroless/static") && final.Base != "scratch" {
			t.Errorf("final stage FROM %s; want distroless/static or scratch (a static binary needs nothing else)", final.Base)
		}
		for _, in := range final.Instr {
			if in.Cmd == "RUN" {
				t.Errorf("line %d: RUN in the final stage: there is no shell there", in.Line)
			}
		}
	})

	t.Run("User", func(t *testing.T) {
		u, ok := final.last("USER")
		if !ok {
			t.Fatal("no USER in the final stage: the image would run as root")
		}
		uid, gid, _ := strings.Cut(u.Args, ":")
		n, err := strconv.ParseInt(uid, 10, 64)
		if err != nil || n == 0 {
			t.Fatalf("USER %s: want a numeric, non-zero uid (runAsNonRoot can only check numbers)", u.Args)
		}
		if psc := k.StatefulSet.Spec.Template.Spec.SecurityContext; psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != n {
			t.Errorf("USER %d, but the StatefulSet runs as %v", n, psc.RunAsUser)
		}
		if g, err := strconv.ParseInt(gid, 10, 64); gid != "" && (err != nil || g == 0) {
			t.Errorf("USER %s: the group must be numeric and non-zero", u.Args)
		}
	})

	t.Run("Ports", func(t *testing.T) {
		var exposed []string
		for _, e := range final.all("EXPOSE") {
			exposed = append(exposed, strings.Fields(e.Args)...)
		}
		for _, p := range c.Ports {
			if !slices.Contains(exposed, strconv.Itoa(int(p.ContainerPort))) {
				t.Errorf("the container port %s (%d) is not in EXPOSE %v", p.Name, p.ContainerPort, exposed)
			}
		}
		if len(exposed) != len(c.Ports) {
			t.Errorf("EXPOSE %v; the StatefulSet uses %d ports", exposed, len(c.Ports))
		}
	})

	t.Run("Volume", func(t *testing.T) {
		v, ok := final.last("VOLUME")
		if !ok {
			t.Fatal("no VOLUME")
		}
		vols, err := execForm(v.Args)
		if err != nil {
			vols = strings.Fields(v.Args)
		}
		dataDir := tomlString(t, dockerConfig(t), "node.data_dir")
		var mountPath string
		for _, m := range c.VolumeMounts {
			if m.Name == k.StatefulSet.Spec.VolumeClaimTemplates[0].Name {
				mountPath = m.MountPath
			}
		}
		if len(vols) != 1 || vols[0] != mountPath || !strings.HasPrefix(dataDir, mountPath+"/") {
			t.Fatalf("VOLUME %v; want [%s], the StatefulSet's data mount, holding the image's data_dir %s", vols, mountPath, dataDir)
		}
		// A fresh Docker volume takes the mount point's owner from the
		// image: it must belong to USER, or the node cannot write there.
		u, _ := final.last("USER")
		owned := false
		for _, cp := range final.all("COPY") {
			f := strings.Fields(cp.Args)
			dest := strings.TrimSuffix(f[len(f)-1], "/")
			if slices.Contains(f, "--chown="+u.Args) && (dest == vols[0] || dest == path.Dir(vols[0])) {
				owned = true
			}
		}
		if !owned {
			t.Errorf("no COPY --chown=%s creates %s: a fresh volume would belong to root", u.Args, vols[0])
		}
	})

	t.Run("Entrypoint", func(t *testing.T) {
		e, ok := final.last("ENTRYPOINT")
		if !ok {
			t.Fatal("no ENTRYPOINT")
		}
		argv, err := execForm(e.Args)
		if err != nil {
			t.Fatal(err)
		}
		if len(argv) != 2 || argv[1] != "serve" {
			t.Fatalf("ENTRYPOINT %q; want [BINARY serve]", argv)
		}
		// The binary is copied there from the build stage, and is on the
		// PATH, so that `kubectl exec cairn-0 -- cairn ...` works.
		copied := false
		for _, cp := range final.all("COPY") {
			f := strings.Fields(cp.Args)
			if strings.HasPrefix(cp.Args, "--from=") && f[len(f)-1] == argv[0] {
				copied = true
			}
		}
		if !copied {
			t.Errorf("ENTRYPOINT runs %s, which no COPY --from puts there", argv[0])
		}
		if path.Dir(argv[0]) != "/usr/local/bin" {
			t.Errorf("the binary is at %s, not on distroless's PATH (/usr/local/bin)", argv[0])
		}
	})

	t.Run("Config", func(t *testing.T) {
		// The image's own cairn.toml sits where the StatefulSet mounts the
		// ConfigMap, so that the mount replaces it.
		var dest string
		for _, cp := range final.all("COPY") {
			if f := strings.Fields(cp.Args); len(f) == 2 && f[0] == "deploy/docker/cairn.toml" {
				dest = f[1]
			}
		}
		if want := c.Args[len(c.Args)-1]; dest != want {
			t.Errorf("the image's config is copied to %q; the StatefulSet reads %q", dest, want)
		}
		env, _ := final.last("ENV")
		if env.Args != "CAIRN_CONFIG="+dest {
			t.Errorf("ENV %s; want CAIRN_CONFIG=%s", env.Args, dest)
		}
		if _, err := fs.Stat(Files, "docker/Dockerfile.dockerignore"); err != nil {
			t.Errorf("no Dockerfile.dockerignore: the build context would carry .git and bin/")
		}
	})
}

func dockerConfig(t *testing.T) string {
	t.Helper()
	b, err := fs.ReadFile(Files, "docker/cairn.toml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDockerfile_DefaultConfig runs the image's built-in configuration
// through the binary: a single node that listens on the exposed ports.
func TestDockerfile_DefaultConfig(t *testing.T) {
	df := mustDockerfile(t)
	final := df.Stages[len(df.Stages)-1]
	e := validateConfig(t, dockerConfig(t), "CAIRN_NODE_HOSTNAME=4f2a9c1b0d3e") // a container id as hostname
	if got := e.str("node.id"); got != "1" {
		t.Errorf("node.id = %q, want 1", got)
	}
	var exposed []string
	for _, x := range final.all("EXPOSE") {
		exposed = append(exposed, strings.Fields(x.Args)...)
	}
	for _, key := range []string{"node.http_addr", "node.raft_addr"} {
		if p := port(t, e.str(key)); !slices.Contains(exposed, p) {
			t.Errorf("%s listens on port %s, which the image does not expose (%v)", key, p, exposed)
		}
	}
}

// TestDockerfile_Parser checks the test's own Dockerfile reader.
func TestDockerfile_Parser(t *testing.T) {
	df, err := parseDockerfile("# syntax=docker/dockerfile:1\nARG V=1.2\nFROM golang:${V} AS b\nRUN a \\\n  b\n\nFROM scratch\nUSER 1:1\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(df.Stages) != 2 || df.Stages[0].Base != "golang:1.2" || df.Stages[0].Name != "b" || df.Stages[0].Instr[0].Args != "a  b" {
		t.Fatalf("parsed %+v", df)
	}
	for _, bad := range []string{"RUN x\n", "FROM a\nRUNN x\n", "ARG V=1\n"} {
		if _, err := parseDockerfile(bad); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

// TestDockerfile_Lint runs dockerfile-utils' linter (npm package
// dockerfile-utils) when it is installed.
func TestDockerfile_Lint(t *testing.T) {
	lint, err := exec.LookPath("dockerfile-utils")
	if err != nil {
		t.Skip("dockerfile-utils is not installed (npm install -g dockerfile-utils); TestDockerfile checks the file")
	}
	out, err := exec.Command(lint, "lint", "docker/Dockerfile").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("dockerfile-utils lint: %v\n%s", err, out)
	}
}
