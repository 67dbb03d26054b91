//go:build integration

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/cairndb/cairn/deploy"
)

// TestStatefulSet_RollingRestartUnderLoad runs deploy/kubernetes as a
// StatefulSet would, on loopback: one process per pod with the ConfigMap's
// cairn.toml and the container's arguments, each pod with its own address
// (127.0.0.11, .12, ...) and the same ports, its hostname (cairn-N) and
// nothing else to tell it its id. Under a continuous write load through
// every ready pod, it rolls the pods one at a time from the highest
// ordinal down, as a rolling update does: SIGTERM, wait for the exit,
// restart, wait for /readyz. The cluster must keep taking writes while a
// pod is down, and every acknowledged write must end up on every pod.
func TestStatefulSet_RollingRestartUnderLoad(t *testing.T) {
	k, err := deploy.LoadKubernetes(deploy.KubernetesFS())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := k.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), deploy.ConfigKey)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	container, err := k.Container()
	if err != nil {
		t.Fatal(err)
	}
	// The container's arguments, with the ConfigMap's mount path replaced
	// by the file written above.
	args := slices.Clone(container.Args)
	if len(args) != 2 || args[0] != "--config" {
		t.Fatalf("container args %q, want --config PATH", args)
	}
	args[1] = cfgPath

	pods := k.PodNames()
	ips := make([]string, len(pods))
	for i := range pods {
		ips[i] = fmt.Sprintf("127.0.0.%d", 11+i)
	}
	httpPort, raftPort := sharedPort(t, ips), sharedPort(t, ips)
	nodes := make([]*node, len(pods))
	var members []string
	for i := range pods {
		n := newNode(t)
		n.http = net.JoinHostPort(ips[i], httpPort)
		n.raft = net.JoinHostPort(ips[i], raftPort)
		n.args = args
		nodes[i] = n
		members = append(members, fmt.Sprintf("%d %s %s", i+1, n.raft, n.http))
	}
	secrets := podSecrets(t, k)
	for i, n := range nodes {
		n.env = append(n.env,
			// The harness pins node.id; a pod has no id but its hostname.
			"CAIRN_NODE_ID=",
			"CAIRN_NODE_HOSTNAME="+pods[i],
			// The pods' DNS names become loopback addresses.
			"CAIRN_CLUSTER_NODES="+strings.Join(members, ","),
			// No backup traffic may leave the machine.
			"CAIRN_S3_URL=http://127.0.0.1:9",
		)
		n.env = append(n.env, secrets...)
	}

	c := &testCluster{t: t, nodes: nodes}
	for _, n := range nodes {
		n.startNoWait()
	}
	for _, n := range nodes {
		n.waitReady(60 * time.Second)
	}
	checkIDs := func() {
		t.Helper()
		for i, n := range nodes {
			st, ok := n.state()
			if want := strconv.Itoa(i + 1); !ok || st.ID != want {
				t.Fatalf("pod %s runs as node %q, want %s (from its hostname)", pods[i], st.ID, want)
			}
		}
	}
	checkIDs()
	c.leader(30 * time.Second).execute(acksTable)

	// One client per pod, writing only while its pod is ready, as clients
	// behind the Service do.
	writers := make([]*writer, len(nodes))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, n := range nodes {
		writers[i] = &writer{n: n}
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeWhileReady(ctx, writers[i], int64(i+1)*1_000_000_000_000)
		}()
	}
	stopLoad := sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(stopLoad)
	acked := func() int {
		total := 0
		for _, w := range writers {
			total += len(w.ackedIDs())
		}
		return total
	}
	waitFor(t, 30*time.Second, "200 acknowledged writes", func() bool { return acked() >= 200 })

	start := time.Now()
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		wasLeader := ""
		if st, ok := n.state(); ok && st.State == "Leader" {
			wasLeader = " (the leader)"
		}
		down := time.Now()
		n.stop() // SIGTERM, and a clean exit
		before := acked()
		waitFor(t, 20*time.Second, "writes through the other pods while "+pods[i]+" is down", func() bool { return acked() >= before+100 })
		mine := len(writers[i].ackedIDs())
		n.start() // and /readyz 200
		waitFor(t, 20*time.Second, "writes through "+pods[i]+" after its restart", func() bool { return len(writers[i].ackedIDs()) >= mine+50 })
		t.Logf("%s%s rolled in %s", pods[i], wasLeader, time.Since(down).Round(time.Millisecond))
	}
	t.Logf("rolling restart of %d pods under load took %s", len(nodes), time.Since(start).Round(time.Millisecond))
	checkIDs()
	stopLoad()

	var all []int64
	unknown := 0
	for _, w := range writers {
		all = append(all, w.ackedIDs()...)
		w.mu.Lock()
		unknown += w.unknown
		w.mu.Unlock()
	}
	c.waitConverged(all, 30*time.Second)
	t.Logf("%d acknowledged writes, all on every pod; %d requests failed without an acknowledgement", len(all), unknown)
}

// writeWhileReady keeps w writing until ctx ends, pausing while its pod
// does not answer /readyz with 200 (a stopped or starting pod). Each run of
// the writer ends at its first failed request; the next one starts with
// fresh ids.
func writeWhileReady(ctx context.Context, w *writer, base int64) {
	client := &http.Client{Timeout: time.Second}
	ready := func() bool {
		resp, err := client.Get(w.n.url("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for run := int64(0); ctx.Err() == nil; {
		if !ready() {
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		w.run(ctx, 2, base+run*100_000_000)
		run++
	}
}

// sharedPort returns a port that was free on every one of the addresses a
// moment ago, so that every simulated pod listens on the same port, as
// pods do.
func sharedPort(t *testing.T, ips []string) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(l.Addr().String())
		ls := []net.Listener{l}
		free := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, p))
			if err != nil {
				free = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if free {
			return p
		}
	}
	t.Fatalf("no port free on all of %v", ips)
	return ""
}

// podSecrets returns the container's variables that come from the Secret,
// with test values; optional ones are left out, as when the Secret does
// not have them.
func podSecrets(t *testing.T, k *deploy.Kubernetes) []string {
	t.Helper()
	c, err := k.Container()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := k.Config()
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Encryption struct {
			KeyActive string `toml:"key_active"`
		} `toml:"encryption"`
	}
	if _, err := toml.Decode(cfg, &parsed); err != nil {
		t.Fatalf("parse the ConfigMap's cairn.toml: %v", err)
	}
	values := map[string]string{
		"CAIRN_CLUSTER_SECRET":  testSecret,
		"CAIRN_ENCRYPTION_KEYS": testKey(parsed.Encryption.KeyActive, 9),
	}
	var env []string
	for _, e := range c.Env {
		ref := e.ValueFrom
		if ref == nil || ref.SecretKeyRef == nil {
			env = append(env, e.Name+"="+e.Value)
			continue
		}
		if ref.SecretKeyRef.Optional != nil && *ref.SecretKeyRef.Optional {
			continue
		}
		v, ok := values[e.Name]
		if !ok {
			t.Fatalf("no test value for %s, which the StatefulSet requires from its Secret", e.Name)
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}
