package deploy

import (
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// composeFile is the part of the Compose specification that
// compose/compose.yaml uses; decoding it strictly catches misspelt keys.
type composeFile struct {
	Name     string                    `json:"name"`
	XCairn   map[string]any            `json:"x-cairn"` // the YAML anchor the cairn services merge
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Image           string        `json:"image"`
	Build           *composeBuild `json:"build,omitempty"`
	Hostname        string        `json:"hostname,omitempty"`
	Entrypoint      []string      `json:"entrypoint,omitempty"`
	Command         []string      `json:"command,omitempty"`
	Restart         string        `json:"restart,omitempty"`
	ReadOnly        bool          `json:"read_only,omitempty"`
	Tmpfs           []string      `json:"tmpfs,omitempty"`
	StopGracePeriod string        `json:"stop_grace_period,omitempty"`
	DependsOn       map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Ports       []string          `json:"ports,omitempty"`
	Volumes     []string          `json:"volumes,omitempty"`
}

type composeBuild struct {
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
}

// composeVar matches Compose's interpolation: ${VAR}, ${VAR:-default}.
var composeVar = regexp.MustCompile(`\$\{(\w+)(:-([^}]*))?\}`)

// interpolate resolves Compose variables to their defaults, as `docker
// compose up` does with none of them set; a variable without a default is
// an error.
func interpolate(s string) (string, error) {
	var err error
	out := composeVar.ReplaceAllStringFunc(s, func(m string) string {
		sub := composeVar.FindStringSubmatch(m)
		if sub[2] == "" {
			err = fmt.Errorf("%s has no default: the file would not work out of the box", m)
		}
		return sub[3]
	})
	return out, err
}

func mustCompose(t *testing.T) *composeFile {
	t.Helper()
	data, err := fs.ReadFile(Files, "compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := DecodeStrict(data, &cf); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return &cf
}

// TestCompose checks the local cluster: three cairn services named and
// hostnamed cairn-0..2 whose configuration and environment pass
// --validate-only with ids 1..3, built from deploy/docker, with an S3
// server whose bucket the configuration uses.
func TestCompose(t *testing.T) {
	cf := mustCompose(t)
	cfgData, err := fs.ReadFile(Files, "compose/cairn.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(cfgData)

	var nodes []string
	for name := range cf.Services {
		if strings.HasPrefix(name, "cairn-") {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	if want := []string{"cairn-0", "cairn-1", "cairn-2"}; !slices.Equal(nodes, want) {
		t.Fatalf("cairn services %v, want %v", nodes, want)
	}

	var hostPorts []string
	for i, name := range nodes {
		t.Run(name, func(t *testing.T) {
			svc := cf.Services[name]
			if svc.Hostname != name {
				t.Errorf("hostname %q, want %q (the node id comes from it)", svc.Hostname, name)
			}
			if b := svc.Build; b == nil || path.Join("deploy/compose", b.Context) != "." || b.Dockerfile != "deploy/docker/Dockerfile" {
				t.Errorf("build %+v: want the repository's root as context and deploy/docker/Dockerfile", b)
			}
			if !svc.ReadOnly {
				t.Errorf("read_only is not set: the image needs no writable root")
			}
			var configMount, dataMount string
			for _, v := range svc.Volumes {
				f := strings.Split(v, ":")
				switch {
				case f[0] == "./cairn.toml":
					configMount = f[1]
					if len(f) < 3 || f[2] != "ro" {
						t.Errorf("volume %s: mount the configuration read-only", v)
					}
				case isNamedVolume(cf, f[0]):
					dataMount = f[1]
				default:
					t.Errorf("volume %s is neither the configuration nor a named volume", v)
				}
			}
			if want := []string{"--config", configMount}; !slices.Equal(svc.Command, want) {
				t.Errorf("command %q, want %q", svc.Command, want)
			}
			if dataMount != "/var/lib/cairn" {
				t.Errorf("data volume mounted at %q, want /var/lib/cairn (the image's VOLUME)", dataMount)
			}
			if len(svc.Ports) != 1 {
				t.Fatalf("ports %v: publish the HTTP port only", svc.Ports)
			}
			p := strings.Split(svc.Ports[0], ":")
			if len(p) != 3 || p[0] != "127.0.0.1" || p[2] != "4001" {
				t.Errorf("port %s: want 127.0.0.1:HOSTPORT:4001 (loopback only: the secrets are demo values)", svc.Ports[0])
			}
			hostPorts = append(hostPorts, p[1])

			env := []string{"CAIRN_NODE_HOSTNAME=" + svc.Hostname}
			for k, v := range svc.Environment {
				checkEnvName(t, "compose.yaml", k)
				v, err := interpolate(v)
				if err != nil {
					t.Errorf("%s: %v", k, err)
				}
				env = append(env, k+"="+v)
			}
			e := validateConfig(t, cfg, env...)
			if got, want := e.str("node.id"), strconv.Itoa(i+1); got != want {
				t.Errorf("node.id = %q, want %s", got, want)
			}
			if got, want := e.str("node.raft_advertise"), name+":4002"; got != want {
				t.Errorf("node.raft_advertise = %q, want %q (the service name resolves on the compose network)", got, want)
			}
			if dd := e.str("node.data_dir"); !strings.HasPrefix(dd, dataMount+"/") {
				t.Errorf("node.data_dir %s is not on the data volume %s", dd, dataMount)
			}
			u, err := url.Parse(e.str("s3.url"))
			if err != nil || cf.Services[u.Hostname()].Image == "" {
				t.Errorf("s3.url %q does not point at a service of the file", e.str("s3.url"))
			}
			if _, ok := svc.DependsOn["s3-bucket"]; !ok {
				t.Errorf("the node does not wait for the bucket")
			}
		})
	}
	slices.Sort(hostPorts)
	if len(slices.Compact(hostPorts)) != len(nodes) {
		t.Errorf("the nodes' host ports collide")
	}

	t.Run("S3", func(t *testing.T) {
		s3 := cf.Services["s3"]
		bucket := tomlString(t, cfg, "s3.bucket")
		init := cf.Services["s3-bucket"]
		if !strings.Contains(strings.Join(init.Command, " "), "create-bucket --bucket "+bucket) {
			t.Errorf("s3-bucket does not create the bucket %s", bucket)
		}
		key, _ := interpolate(s3.Environment["ROOT_ACCESS_KEY"])
		nodeKey, _ := interpolate(cf.Services["cairn-0"].Environment["CAIRN_S3_KEY"])
		if key == "" || key != nodeKey {
			t.Errorf("the S3 server's access key %q is not the nodes' %q", key, nodeKey)
		}
	})
}

// isNamedVolume reports whether name is a volume the file declares.
func isNamedVolume(cf *composeFile, name string) bool {
	_, ok := cf.Volumes[name]
	return ok
}
