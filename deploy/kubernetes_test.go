package deploy

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cairndb/cairn/cmd/cairn/config"
)

func mustLoad(t *testing.T) *Kubernetes {
	t.Helper()
	k, err := LoadKubernetes(KubernetesFS())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustContainer(t *testing.T, k *Kubernetes) *corev1.Container {
	t.Helper()
	c, err := k.Container()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustConfig(t *testing.T, k *Kubernetes) string {
	t.Helper()
	s, err := k.Config()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// copyFS copies an fs.FS into a MapFS that a test may change.
func copyFS(t *testing.T, src fs.FS) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(src, p)
		out[p] = &fstest.MapFile{Data: data, Mode: 0o644}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKubernetes_LoadStrict reads the kustomization as the API server
// would, and checks that the reading is strict: a misspelt, duplicated or
// wrongly cased field is refused, not silently dropped.
func TestKubernetes_LoadStrict(t *testing.T) {
	k := mustLoad(t)
	if got := len(k.Services); got != 2 {
		t.Errorf("%d Services, want 2 (headless and client)", got)
	}
	for _, name := range k.Kustomization.Resources {
		if strings.Contains(name, "/") {
			t.Errorf("resource %s is outside the directory: keep the kustomization self-contained", name)
		}
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"UnknownField", "  podManagementPolicy: Parallel\n", "  podManagementPolicy: Parallel\n  podManagmentPolicy: Parallel\n", "podManagmentPolicy"},
		{"DuplicateField", "  replicas: 3\n", "  replicas: 3\n  replicas: 5\n", "replicas"},
		{"WrongCase", "  replicas: 3\n", "  Replicas: 3\n", "Replicas"},
		{"NestedUnknownField", "          readOnlyRootFilesystem: true\n", "          readOnlyRootFileSystem: true\n", "readOnlyRootFileSystem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := copyFS(t, KubernetesFS())
			f := fsys["statefulset.yaml"]
			if !bytes.Contains(f.Data, []byte(tc.old)) {
				t.Fatalf("statefulset.yaml has no %q to change", tc.old)
			}
			f.Data = bytes.Replace(f.Data, []byte(tc.old), []byte(tc.new), 1)
			_, err := LoadKubernetes(fsys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadKubernetes = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestKubernetes_Kustomize builds the directory with kustomize (kubectl's
// built-in) where kubectl is installed: every object it emits decodes
// strictly, and the image is rewritten to the kustomization's.
func TestKubernetes_Kustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; the kustomization is still read by TestKubernetes_LoadStrict")
	}
	k := mustLoad(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectl, "kustomize", "kubernetes").Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	objs, err := DecodeObjects(out)
	if err != nil {
		t.Fatalf("kustomize output: %v", err)
	}
	want := 3 + len(k.Services)
	if len(objs) != want {
		t.Errorf("kustomize emitted %d objects, want %d", len(objs), want)
	}
	img := k.Kustomization.Images[0]
	for _, o := range objs {
		if ss, ok := o.(*appsv1.StatefulSet); ok {
			if got, want := ss.Spec.Template.Spec.Containers[0].Image, img.NewName+":"+img.NewTag; got != want {
				t.Errorf("image after kustomize: %q, want %q", got, want)
			}
		}
	}
}

// matches reports whether a label selector selects a pod with podLabels.
func matches(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// TestKubernetes_StatefulSet checks the StatefulSet and the objects around
// it fit together, and fit what the issue asks of a production deployment.
func TestKubernetes_StatefulSet(t *testing.T) {
	k := mustLoad(t)
	ss := k.StatefulSet
	spec := ss.Spec.Template.Spec
	c := mustContainer(t, k)
	podLabels := ss.Spec.Template.Labels
	cfg := mustConfig(t, k)

	containerPort := func(name string) int32 {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
		t.Fatalf("the container has no port named %q", name)
		return 0
	}

	t.Run("Replicas", func(t *testing.T) {
		if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
			t.Errorf("replicas = %v, want 3", ss.Spec.Replicas)
		}
		if ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("podManagementPolicy = %q, want Parallel", ss.Spec.PodManagementPolicy)
		}
		u := ss.Spec.UpdateStrategy
		if u.Type != "" && u.Type != appsv1.RollingUpdateStatefulSetStrategyType {
			t.Errorf("updateStrategy %q, want RollingUpdate", u.Type)
		}
		if r := u.RollingUpdate; r != nil && r.MaxUnavailable != nil && r.MaxUnavailable.IntValue() != 1 {
			t.Errorf("rolling updates may take %v pods down at once, want 1", r.MaxUnavailable)
		}
		for _, name := range append([]string{ss.Name}, k.PodNames()...) {
			if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
				t.Errorf("name %q: %s", name, strings.Join(errs, "; "))
			}
		}
	})

	t.Run("Selectors", func(t *testing.T) {
		if !matches(t, ss.Spec.Selector, podLabels) {
			t.Errorf("the StatefulSet's selector %v does not select its pods %v", ss.Spec.Selector, podLabels)
		}
		if !matches(t, k.PodDisruptionBudget.Spec.Selector, podLabels) {
			t.Errorf("the PodDisruptionBudget does not select the pods")
		}
		for _, svc := range k.Services {
			if !matches(t, metav1.SetAsLabelSelector(svc.Spec.Selector), podLabels) {
				t.Errorf("Service %s does not select the pods", svc.Name)
			}
		}
	})

	t.Run("Services", func(t *testing.T) {
		var headless, client *corev1.Service
		for _, svc := range k.Services {
			if svc.Name == ss.Spec.ServiceName {
				headless = svc
			} else {
				client = svc
			}
			for _, p := range svc.Spec.Ports {
				if p.TargetPort.StrVal == "" {
					t.Errorf("Service %s port %s: use the container port's name as targetPort", svc.Name, p.Name)
					continue
				}
				if got := containerPort(p.TargetPort.StrVal); got != p.Port {
					t.Errorf("Service %s port %s is %d, the container's is %d", svc.Name, p.Name, p.Port, got)
				}
			}
		}
		if headless == nil {
			t.Fatalf("no Service named %q (the StatefulSet's serviceName)", ss.Spec.ServiceName)
		}
		if headless.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s: clusterIP %q, want None (headless)", headless.Name, headless.Spec.ClusterIP)
		}
		if !headless.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: publishNotReadyAddresses must be true: pods turn ready only after they found each other", headless.Name)
		}
		if len(headless.Spec.Ports) != 2 {
			t.Errorf("Service %s: %d ports, want http and raft", headless.Name, len(headless.Spec.Ports))
		}
		if client == nil || client.Spec.ClusterIP == corev1.ClusterIPNone || client.Spec.PublishNotReadyAddresses {
			t.Fatalf("no client Service that routes to ready pods only")
		}
		if len(client.Spec.Ports) != 1 || client.Spec.Ports[0].TargetPort.StrVal != "http" {
			t.Errorf("client Service %s must expose the HTTP port only: %v", client.Name, client.Spec.Ports)
		}
	})

	t.Run("Ports", func(t *testing.T) {
		for _, p := range c.Ports {
			if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
				t.Errorf("port name %q: %s", p.Name, strings.Join(errs, "; "))
			}
		}
		for name, key := range map[string]string{"http": "node.http_addr", "raft": "node.raft_addr"} {
			if got, want := strconv.Itoa(int(containerPort(name))), port(t, tomlString(t, cfg, key)); got != want {
				t.Errorf("container port %s is %s, %s in the ConfigMap listens on %s", name, got, key, want)
			}
		}
	})

	t.Run("Probes", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{
			{"readiness", c.ReadinessProbe, "/readyz"},
			{"liveness", c.LivenessProbe, "/livez"},
			{"startup", c.StartupProbe, "/livez"},
		} {
			if tc.probe == nil || tc.probe.HTTPGet == nil {
				t.Errorf("no HTTP %s probe", tc.name)
				continue
			}
			g := tc.probe.HTTPGet
			if g.Path != tc.path || g.Port.StrVal != "http" {
				t.Errorf("%s probe: GET %s on port %q, want %s on port http", tc.name, g.Path, g.Port.String(), tc.path)
			}
		}
		// A restore downloads and checks a whole backup before HTTP
		// listens: the startup probe must give it minutes.
		if p := c.StartupProbe; p != nil && p.PeriodSeconds*p.FailureThreshold < 600 {
			t.Errorf("the startup probe gives a node %ds to start; a restore needs minutes", p.PeriodSeconds*p.FailureThreshold)
		}
	})

	t.Run("Shutdown", func(t *testing.T) {
		e := validateConfig(t, cfg, podEnv(t, k, 0, nil)...)
		drain, err := time.ParseDuration(e.str("http.shutdown_timeout"))
		if err != nil {
			t.Fatal(err)
		}
		var preStop int64
		if l := c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
			preStop = l.PreStop.Sleep.Seconds
		} else {
			t.Errorf("no preStop pause: the pod would stop before it leaves the Service's endpoints")
		}
		grace := spec.TerminationGracePeriodSeconds
		// preStop, then the HTTP drain, then the hand-over and Raft's
		// shutdown, which take seconds.
		need := preStop + int64(drain.Seconds()) + 10
		if grace == nil || *grace < need {
			t.Errorf("terminationGracePeriodSeconds = %v, want at least %d (preStop %ds + http.shutdown_timeout %s + 10s for the hand-over)", grace, need, preStop, drain)
		}
	})

	t.Run("Security", func(t *testing.T) {
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("the pod must run as a non-root uid: %+v", psc)
		}
		if psc != nil && psc.FSGroup == nil {
			t.Errorf("no fsGroup: the volume would not be writable by the pod's user")
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("the root file system must be read-only")
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("allowPrivilegeEscalation must be false")
		}
		if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("capabilities must drop ALL")
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("the pods need no API token: set automountServiceAccountToken: false")
		}
	})

	t.Run("Volumes", func(t *testing.T) {
		volumes := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			volumes[v.Name] = v
		}
		claims := map[string]bool{}
		for _, pvc := range ss.Spec.VolumeClaimTemplates {
			claims[pvc.Name] = true
			if _, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
				t.Errorf("volume claim %s requests no storage", pvc.Name)
			}
		}
		dataDir := tomlString(t, cfg, "node.data_dir")
		var dataMount, configMount string
		for _, m := range c.VolumeMounts {
			v, isVolume := volumes[m.Name]
			switch {
			case claims[m.Name]:
				if dataDir == m.MountPath || strings.HasPrefix(dataDir, m.MountPath+"/") {
					dataMount = m.MountPath
				}
			case isVolume && v.ConfigMap != nil:
				if v.ConfigMap.Name != k.ConfigMap.Name {
					t.Errorf("volume %s mounts ConfigMap %q; the kustomization's is %q", m.Name, v.ConfigMap.Name, k.ConfigMap.Name)
				}
				if !m.ReadOnly {
					t.Errorf("the configuration is mounted writable")
				}
				configMount = m.MountPath
			case isVolume && v.EmptyDir != nil:
			case !isVolume:
				t.Errorf("mount %s names no volume and no volume claim", m.Name)
			default:
				t.Errorf("mount %s: only the volume claim and emptyDirs may be written", m.Name)
			}
		}
		if dataMount == "" {
			t.Errorf("node.data_dir %s is not on the pod's volume claim", dataDir)
		}
		if want := []string{"--config", path.Join(configMount, ConfigKey)}; !slices.Equal(c.Args, want) {
			t.Errorf("container args %q, want %q", c.Args, want)
		}
	})

	t.Run("Resources", func(t *testing.T) {
		req := c.Resources.Requests
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := req[r]; !ok || q.IsZero() {
				t.Errorf("no %s request", r)
			}
		}
		if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && lim.Cmp(req[corev1.ResourceMemory]) < 0 {
			t.Errorf("memory limit %s below the request %s", lim.String(), req.Memory().String())
		}
	})

	t.Run("AntiAffinity", func(t *testing.T) {
		a := spec.Affinity
		if a == nil || a.PodAntiAffinity == nil {
			t.Fatal("no pod anti-affinity")
		}
		found := false
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "kubernetes.io/hostname" && matches(t, term.LabelSelector, podLabels) {
				found = true
			}
		}
		if !found {
			t.Errorf("no required anti-affinity on kubernetes.io/hostname that selects the pods: two could share a machine")
		}
	})

	t.Run("DisruptionBudget", func(t *testing.T) {
		pdb := k.PodDisruptionBudget.Spec
		if pdb.MaxUnavailable == nil || pdb.MaxUnavailable.IntValue() != 1 || pdb.MinAvailable != nil {
			t.Fatalf("the PodDisruptionBudget must allow exactly one pod down (maxUnavailable: 1), got %+v", pdb)
		}
		if n := int(*ss.Spec.Replicas); n-1 < n/2+1 {
			t.Errorf("with %d replicas, one pod down loses the quorum", n)
		}
	})

	t.Run("Image", func(t *testing.T) {
		if len(k.Kustomization.Images) != 1 || k.Kustomization.Images[0].Name != c.Image {
			t.Fatalf("the kustomization must set the image %q: %+v", c.Image, k.Kustomization.Images)
		}
		if img := k.Kustomization.Images[0]; img.NewName == "" || img.NewTag == "" {
			t.Errorf("image %q: set newName and newTag", img.Name)
		}
	})

	t.Run("Secrets", func(t *testing.T) {
		refs := map[string]bool{}
		for _, e := range c.Env {
			checkEnvName(t, "statefulset.yaml", e.Name)
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			refs[ref.Key] = true
			if ref.Name != "cairn-secrets" {
				t.Errorf("%s comes from Secret %q; all secrets live in cairn-secrets", e.Name, ref.Name)
			}
			optional := ref.Optional != nil && *ref.Optional
			if required := e.Name == "CAIRN_CLUSTER_SECRET" || e.Name == "CAIRN_ENCRYPTION_KEYS"; required == optional {
				t.Errorf("%s: optional = %v", e.Name, optional)
			}
		}
		for _, name := range []string{"CAIRN_CLUSTER_SECRET", "CAIRN_ENCRYPTION_KEYS", "CAIRN_S3_KEY", "CAIRN_S3_SECRET"} {
			if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
				return e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
			}) {
				t.Errorf("%s does not come from the Secret", name)
			}
		}
		data, err := fs.ReadFile(Files, "kubernetes/examples/secret.yaml")
		if err != nil {
			t.Fatal(err)
		}
		objs, err := DecodeObjects(data)
		if err != nil {
			t.Fatalf("examples/secret.yaml: %v", err)
		}
		secret, ok := objs[0].(*corev1.Secret)
		if !ok || len(objs) != 1 || secret.Name != "cairn-secrets" {
			t.Fatalf("examples/secret.yaml must hold the Secret cairn-secrets")
		}
		var keys []string
		for key := range secret.StringData {
			keys = append(keys, key)
			if !refs[key] {
				t.Errorf("the example Secret's %s is not used by the StatefulSet", key)
			}
		}
		if len(keys) != len(refs) {
			t.Errorf("the example Secret has %v; the StatefulSet reads %v", keys, refs)
		}
	})
}

// podEnv is the environment a pod of the StatefulSet runs with, hostname
// aside: the container's variables, with made-up values for those that
// come from the Secret (optional ones left out unless withOptional),
// plus extra.
func podEnv(t *testing.T, k *Kubernetes, ordinal int, extra []string, withOptional ...bool) []string {
	t.Helper()
	c := mustContainer(t, k)
	secrets := secretEnv(t, tomlString(t, mustConfig(t, k), "encryption.key_active"))
	env := []string{"CAIRN_NODE_HOSTNAME=" + k.PodNames()[ordinal]}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			if o := e.ValueFrom.SecretKeyRef.Optional; o != nil && *o && (len(withOptional) == 0 || !withOptional[0]) {
				continue
			}
			v, ok := secrets[e.Name]
			if !ok {
				t.Fatalf("no test value for %s: add one to secretEnv", e.Name)
			}
			env = append(env, e.Name+"="+v)
		default:
			t.Fatalf("%s: only plain values and Secret references are expected", e.Name)
		}
	}
	return append(env, extra...)
}

// TestKubernetes_Config runs the ConfigMap's cairn.toml through the binary
// as each pod would see it: the hostname ordinal gives ids 1..replicas,
// each pod advertises its own entry of cluster.nodes, and cluster.nodes
// has one entry per replica, named by the headless Service.
func TestKubernetes_Config(t *testing.T) {
	k := mustLoad(t)
	cfg := mustConfig(t, k)
	ss := k.StatefulSet
	pods := k.PodNames()

	var nodes struct {
		Cluster struct {
			Nodes []string `toml:"nodes"`
		} `toml:"cluster"`
	}
	decodeTOML(t, cfg, &nodes)
	if got, want := len(nodes.Cluster.Nodes), len(pods); got != want {
		t.Fatalf("cluster.nodes has %d entries, the StatefulSet %d replicas", got, want)
	}

	for i, pod := range pods {
		t.Run(pod, func(t *testing.T) {
			want := strconv.Itoa(i + 1)
			if id, ok := config.IDFromHostname(pod); !ok || id != want {
				t.Fatalf("IDFromHostname(%q) = %q, %v; want %s", pod, id, ok, want)
			}
			for _, optional := range []bool{false, true} {
				e := validateConfig(t, cfg, podEnv(t, k, i, nil, optional)...)
				if got := e.str("node.id"); got != want {
					t.Errorf("node.id = %q, want %s", got, want)
				}
				// The pod's entry in cluster.nodes names it by its DNS name
				// under the headless Service (optionally fully qualified).
				host := regexp.QuoteMeta(pod + "." + ss.Spec.ServiceName)
				for key, portName := range map[string]string{"node.raft_advertise": "raft", "node.http_advertise": "http"} {
					re := regexp.MustCompile(`^` + host + `(\.[a-z0-9.-]+)?:` + strconv.Itoa(int(portOf(t, k, portName))) + `$`)
					if got := e.str(key); !re.MatchString(got) {
						t.Errorf("%s = %q, want %s.%s[.NAMESPACE.svc...]:%d", key, got, pod, ss.Spec.ServiceName, portOf(t, k, portName))
					}
				}
				if got := e.str("cluster.secret"); got != "[redacted]" {
					t.Errorf("cluster.secret shows as %q", got)
				}
			}
		})
	}

	t.Run("RestoreVariable", func(t *testing.T) {
		// The commented CAIRN_BACKUP_RESTORE, once uncommented, is a valid
		// manifest and a valid restore setting.
		fsys := copyFS(t, KubernetesFS())
		f := fsys["statefulset.yaml"]
		uncomment := regexp.MustCompile(`(?m)^(\s*)# (- name: CAIRN_BACKUP_RESTORE\n\s*)# (  value: .*)$`)
		if !uncomment.Match(f.Data) {
			t.Fatal("statefulset.yaml has no commented CAIRN_BACKUP_RESTORE entry")
		}
		f.Data = uncomment.ReplaceAll(f.Data, []byte("$1$2$3"))
		k2, err := LoadKubernetes(fsys)
		if err != nil {
			t.Fatalf("with CAIRN_BACKUP_RESTORE uncommented: %v", err)
		}
		e := validateConfig(t, cfg, podEnv(t, k2, 0, nil)...)
		if got := e.str("backup.restore"); !strings.HasPrefix(got, "s3:") {
			t.Errorf("backup.restore = %q after uncommenting", got)
		}
	})
}

// portOf returns the container port named name.
func portOf(t *testing.T, k *Kubernetes, name string) int32 {
	t.Helper()
	for _, p := range mustContainer(t, k).Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("no container port %q", name)
	return 0
}

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) that the example uses.
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// TestKubernetes_ServiceMonitor checks the ServiceMonitor example selects
// the headless Service (so that not-ready pods are scraped too) and
// scrapes a port that Service has.
func TestKubernetes_ServiceMonitor(t *testing.T) {
	k := mustLoad(t)
	data, err := fs.ReadFile(Files, "kubernetes/examples/servicemonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var sm serviceMonitor
	if err := DecodeStrict(data, &sm); err != nil {
		t.Fatalf("servicemonitor.yaml: %v", err)
	}
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" {
		t.Fatalf("apiVersion %q kind %q", sm.APIVersion, sm.Kind)
	}
	var selected []*corev1.Service
	for _, svc := range k.Services {
		if matches(t, &sm.Spec.Selector, svc.Labels) {
			selected = append(selected, svc)
		}
	}
	if len(selected) != 1 || selected[0].Name != k.StatefulSet.Spec.ServiceName {
		t.Fatalf("the ServiceMonitor must select the headless Service %s alone; it selects %d", k.StatefulSet.Spec.ServiceName, len(selected))
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("%d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if !slices.ContainsFunc(selected[0].Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
		t.Errorf("endpoint port %q is not a port of Service %s", ep.Port, selected[0].Name)
	}
	if ep.Path != "/metrics" {
		t.Errorf("endpoint path %q, want /metrics", ep.Path)
	}
	for _, d := range []string{ep.Interval, ep.ScrapeTimeout} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("duration %q: %v", d, err)
		}
	}
}

// TestKubernetes_ProbePathsAnswer starts a real node and requests every
// path the manifests point at: the probes' and the ServiceMonitor's.
func TestKubernetes_ProbePathsAnswer(t *testing.T) {
	k := mustLoad(t)
	c := mustContainer(t, k)
	base := startNode(t)
	paths := map[string]bool{"/metrics": true}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if p != nil && p.HTTPGet != nil {
			paths[p.HTTPGet.Path] = true
		}
	}
	for p := range paths {
		code, body := get(t, base+p)
		if code != http.StatusOK {
			t.Errorf("GET %s: HTTP %d: %.200s", p, code, body)
		}
		if p == "/metrics" && !strings.Contains(body, "cairn_") {
			t.Errorf("GET /metrics has no cairn_ metric")
		}
	}
}

// startNode runs a single cairn node on loopback until the test ends and
// returns its base URL once /readyz answers 200.
func startNode(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	httpAddr, raftAddr := freeAddr(t), freeAddr(t)
	logf, err := os.Create(filepath.Join(dir, "cairn.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cairnBinary(t), "serve")
	cmd.Env = cleanEnv("CAIRN_NODE_ID=1", "CAIRN_NODE_DATA_DIR="+filepath.Join(dir, "data"),
		"CAIRN_NODE_HTTP_ADDR="+httpAddr, "CAIRN_NODE_RAFT_ADDR="+raftAddr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("node log:\n%s", b)
			}
		}
	})
	base := "http://" + httpAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("cairn exited before it was ready: %v", err)
		default:
		}
		if code, _ := get(t, base+"/readyz"); code == http.StatusOK {
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node was not ready within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// get requests url and returns the status and body; 0 when the request
// fails.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(b)
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
