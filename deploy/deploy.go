package deploy

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Files holds the deployment files, with paths relative to this directory
// ("kubernetes/statefulset.yaml", "docker/Dockerfile").
//
//go:embed kubernetes docker compose systemd
var Files embed.FS

// ConfigKey is the key of cairn.toml in the ConfigMap.
const ConfigKey = "cairn.toml"

// Kustomization is the part of kustomize's Kustomization file that
// kubernetes/kustomization.yaml uses. Decoding it strictly catches a field
// this type does not know, so a new kustomize feature in the file needs a
// field here (and a look at what it changes).
type Kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Resources are the manifest files, relative to the kustomization.
	Resources []string `json:"resources"`
	// Images rewrites container images by name.
	Images []Image `json:"images,omitempty"`
}

// Image is one entry of a kustomization's images.
type Image struct {
	// Name is the image as the manifests spell it.
	Name string `json:"name"`
	// NewName and NewTag replace its repository and tag.
	NewName string `json:"newName,omitempty"`
	NewTag  string `json:"newTag,omitempty"`
}

// Kubernetes is the set of objects kubernetes/kustomization.yaml applies.
type Kubernetes struct {
	// Kustomization is the kustomization file itself.
	Kustomization Kustomization
	// StatefulSet runs the Cairn pods.
	StatefulSet *appsv1.StatefulSet
	// ConfigMap holds cairn.toml (ConfigKey).
	ConfigMap *corev1.ConfigMap
	// Services are the headless Service and the client Service, in the
	// order of the resources.
	Services []*corev1.Service
	// PodDisruptionBudget limits voluntary disruptions.
	PodDisruptionBudget *policyv1.PodDisruptionBudget
}

// KubernetesFS returns the kubernetes directory of Files.
func KubernetesFS() fs.FS {
	sub, err := fs.Sub(Files, "kubernetes")
	if err != nil {
		panic("deploy: " + err.Error()) // impossible: the directory is embedded
	}
	return sub
}

// LoadKubernetes reads kustomization.yaml at the root of fsys and every
// resource it lists, each decoded strictly into its API type. Kinds other
// than StatefulSet, ConfigMap, Service and PodDisruptionBudget, a second
// StatefulSet, ConfigMap or PodDisruptionBudget, and a missing one are
// errors.
func LoadKubernetes(fsys fs.FS) (*Kubernetes, error) {
	data, err := fs.ReadFile(fsys, "kustomization.yaml")
	if err != nil {
		return nil, fmt.Errorf("read kustomization: %w", err)
	}
	k := &Kubernetes{}
	if err := DecodeStrict(data, &k.Kustomization); err != nil {
		return nil, fmt.Errorf("kustomization.yaml: %w", err)
	}
	if k.Kustomization.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kustomization.Kind != "Kustomization" {
		return nil, fmt.Errorf("kustomization.yaml: apiVersion %q kind %q, want kustomize.config.k8s.io/v1beta1 Kustomization", k.Kustomization.APIVersion, k.Kustomization.Kind)
	}
	for _, name := range k.Kustomization.Resources {
		data, err := fs.ReadFile(fsys, path.Clean(name))
		if err != nil {
			return nil, fmt.Errorf("read resource: %w", err)
		}
		objs, err := DecodeObjects(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, obj := range objs {
			if err := k.add(obj); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	switch {
	case k.StatefulSet == nil:
		return nil, errors.New("kustomization: no StatefulSet")
	case k.ConfigMap == nil:
		return nil, errors.New("kustomization: no ConfigMap")
	case k.PodDisruptionBudget == nil:
		return nil, errors.New("kustomization: no PodDisruptionBudget")
	case len(k.Services) == 0:
		return nil, errors.New("kustomization: no Service")
	}
	return k, nil
}

func (k *Kubernetes) add(obj runtime.Object) error {
	dup := func(kind string) error { return fmt.Errorf("a second %s", kind) }
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		if k.StatefulSet != nil {
			return dup("StatefulSet")
		}
		k.StatefulSet = o
	case *corev1.ConfigMap:
		if k.ConfigMap != nil {
			return dup("ConfigMap")
		}
		k.ConfigMap = o
	case *corev1.Service:
		k.Services = append(k.Services, o)
	case *policyv1.PodDisruptionBudget:
		if k.PodDisruptionBudget != nil {
			return dup("PodDisruptionBudget")
		}
		k.PodDisruptionBudget = o
	default:
		return fmt.Errorf("unexpected object %T", obj)
	}
	return nil
}

// Config returns cairn.toml as the ConfigMap holds it.
func (k *Kubernetes) Config() (string, error) {
	s, ok := k.ConfigMap.Data[ConfigKey]
	if !ok {
		return "", fmt.Errorf("configmap %s has no key %s", k.ConfigMap.Name, ConfigKey)
	}
	return s, nil
}

// Container returns the StatefulSet's container named "cairn".
func (k *Kubernetes) Container() (*corev1.Container, error) {
	cs := k.StatefulSet.Spec.Template.Spec.Containers
	for i := range cs {
		if cs[i].Name == "cairn" {
			return &cs[i], nil
		}
	}
	return nil, fmt.Errorf("statefulset %s has no container named cairn", k.StatefulSet.Name)
}

// PodNames returns the names the StatefulSet gives its pods, in ordinal
// order: "cairn-0", "cairn-1", ...
func (k *Kubernetes) PodNames() []string {
	n := 1
	if r := k.StatefulSet.Spec.Replicas; r != nil {
		n = int(*r)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", k.StatefulSet.Name, i)
	}
	return names
}

// scheme knows the API types the manifests may hold.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, policyv1.AddToScheme} {
		if err := add(s); err != nil {
			panic("deploy: " + err.Error())
		}
	}
	return s
}()

// strict decodes YAML or JSON by apiVersion and kind, refusing unknown and
// duplicate fields, as the API server does with fieldValidation=Strict.
var strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// docSeparator splits a YAML stream into documents.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// DecodeObjects decodes every document of a YAML stream into its API type
// (an *appsv1.StatefulSet, a *corev1.Service, ...), strictly. Empty
// documents are skipped.
func DecodeObjects(data []byte) ([]runtime.Object, error) {
	var objs []runtime.Object
	for i, doc := range docSeparator.Split(string(data), -1) {
		if isBlank([]byte(doc)) {
			continue
		}
		obj, gvk, err := strict.Decode([]byte(doc), nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if gvk.Kind == "" {
			return nil, fmt.Errorf("document %d: no kind", i+1)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// DecodeStrict decodes one YAML document into v, which is not a registered
// API type (a Kustomization, a compose file, a custom resource). Field
// names match case-sensitively, and unknown and duplicate fields are
// errors, as for the API types.
func DecodeStrict(data []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return fmt.Errorf("yaml: %w", err)
	}
	problems, err := json.UnmarshalStrict(j, v)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return errors.Join(problems...)
}

// isBlank reports whether a YAML document holds only comments and space.
func isBlank(doc []byte) bool {
	for line := range bytes.SplitSeq(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}
