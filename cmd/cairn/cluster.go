package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairndb/cairn/cluster"
	"github.com/cairndb/cairn/cmd/cairn/config"
)

// clusterOptions are the flags every `cairn cluster` subcommand shares.
type clusterOptions struct {
	addr    string
	config  string
	timeout time.Duration
	json    bool
}

func newClusterCommand(env []string) *cobra.Command {
	o := &clusterOptions{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show and change cluster membership",
	}
	cmd.PersistentFlags().StringVar(&o.addr, "addr", "127.0.0.1:4001", "HTTP address of any node")
	cmd.PersistentFlags().StringVarP(&o.config, "config", "c", "", "configuration file, for the cluster secret (also CAIRN_CONFIG; CAIRN_CLUSTER_SECRET works alone)")
	cmd.PersistentFlags().DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on the whole command")
	cmd.AddCommand(newClusterStatusCommand(o), newClusterJoinCommand(o, env), newClusterRemoveCommand(o, env))
	return cmd
}

// nodeStatus is the part of /status that `cluster status` shows.
type nodeStatus struct {
	ID          string `json:"id"`
	HTTPAddr    string `json:"http_addr"`
	RaftAddr    string `json:"raft_addr"`
	Voter       bool   `json:"voter"`
	Reachable   bool   `json:"reachable"`
	Error       string `json:"error,omitempty"`
	State       string `json:"state,omitempty"`
	Term        uint64 `json:"term,omitempty"`
	CommitIndex uint64 `json:"commit_index,omitempty"`
	Applied     uint64 `json:"applied_index,omitempty"`
	Lag         uint64 `json:"lag"`
}

// clusterStatus is what `cluster status --json` prints.
type clusterStatus struct {
	Mode    string       `json:"mode"`
	Leader  string       `json:"leader"`
	Term    uint64       `json:"term"`
	Members []nodeStatus `json:"members"`
}

// remoteStatus is the "cairn" section of a node's /status.
type remoteStatus struct {
	Cairn cluster.Status `json:"cairn"`
}

func getStatus(ctx context.Context, addr string) (cluster.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return cluster.Status{}, err
	}
	authorize(req)
	resp, err := nodeClient.Do(req)
	if err != nil {
		return cluster.Status{}, fmt.Errorf("get %s/status: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return cluster.Status{}, fmt.Errorf("get %s/status: HTTP %d: %s", addr, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var rs remoteStatus
	if err := json.NewDecoder(resp.Body).Decode(&rs); err != nil {
		return cluster.Status{}, fmt.Errorf("decode %s/status: %w", addr, err)
	}
	return rs.Cairn, nil
}

func newClusterStatusCommand(o *clusterOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Members, leader, term, and each node's commit/applied index and lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			cs, err := collectStatus(ctx, o.addr)
			if err != nil {
				return err
			}
			if o.json {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(cs)
			}
			return printStatus(cmd.OutOrStdout(), cs)
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON instead of a table")
	return cmd
}

// collectStatus asks addr for the membership, then every member for its
// own indexes, in parallel.
func collectStatus(ctx context.Context, addr string) (clusterStatus, error) {
	first, err := getStatus(ctx, addr)
	if err != nil {
		return clusterStatus{}, err
	}
	if first.Mode != "raft" {
		return clusterStatus{}, fmt.Errorf("node %s is in %s mode: there is no Raft cluster", addr, first.Mode)
	}
	cs := clusterStatus{Mode: first.Mode, Leader: first.Leader.ID, Term: first.Term}
	cs.Members = make([]nodeStatus, len(first.Members))
	var wg sync.WaitGroup
	for i, m := range first.Members {
		cs.Members[i] = nodeStatus{ID: m.ID, HTTPAddr: m.HTTPAddr, RaftAddr: m.RaftAddr, Voter: m.Voter}
		if m.HTTPAddr == "" {
			cs.Members[i].Error = "HTTP address unknown"
			continue
		}
		wg.Add(1)
		go func(ns *nodeStatus) {
			defer wg.Done()
			st, err := getStatus(ctx, ns.HTTPAddr)
			if err != nil {
				ns.Error = err.Error()
				return
			}
			ns.Reachable = true
			ns.State, ns.Term, ns.CommitIndex, ns.Applied = st.State, st.Term, st.CommitIndex, st.AppliedIndex
		}(&cs.Members[i])
	}
	wg.Wait()
	var leaderCommit uint64
	for _, m := range cs.Members {
		if m.ID == cs.Leader {
			leaderCommit = m.CommitIndex
		}
	}
	for i := range cs.Members {
		if m := &cs.Members[i]; m.Reachable && leaderCommit > m.Applied {
			m.Lag = leaderCommit - m.Applied
		}
	}
	sort.Slice(cs.Members, func(i, j int) bool { return cs.Members[i].ID < cs.Members[j].ID })
	return cs, nil
}

func printStatus(w io.Writer, cs clusterStatus) error {
	leader := cs.Leader
	if leader == "" {
		leader = "(none)"
	}
	fmt.Fprintf(w, "leader: %s   term: %d   members: %d\n\n", leader, cs.Term, len(cs.Members))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSUFFRAGE\tHTTP\tRAFT\tTERM\tCOMMIT\tAPPLIED\tLAG")
	for _, m := range cs.Members {
		suffrage := "voter"
		if !m.Voter {
			suffrage = "nonvoter"
		}
		state := m.State
		if !m.Reachable {
			state = "unreachable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", m.ID, state, suffrage, m.HTTPAddr, m.RaftAddr, m.Term, m.CommitIndex, m.Applied, m.Lag)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range cs.Members {
		if m.Error != "" {
			fmt.Fprintf(w, "node %s: %s\n", m.ID, m.Error)
		}
	}
	return nil
}

func newClusterJoinCommand(o *clusterOptions, env []string) *cobra.Command {
	var (
		id, raftAddr, httpAddr string
		nonVoter               bool
	)
	cmd := &cobra.Command{
		Use:   "join --id ID --raft-addr HOST:PORT --http-addr HOST:PORT",
		Short: "Add a node to the cluster (sent to --addr, which passes it to the leader)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			voter := !nonVoter
			body, err := json.Marshal(map[string]any{"id": id, "addr": raftAddr, "http_addr": httpAddr, "voter": voter})
			if err != nil {
				return err
			}
			if err := o.membershipCall(cmd.Context(), env, http.MethodPost, "/join", body); err != nil {
				return fmt.Errorf("join node %s: %w", id, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s joined (raft %s, http %s)\n", id, raftAddr, httpAddr)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "id of the new node (required)")
	cmd.Flags().StringVar(&raftAddr, "raft-addr", "", "Raft address of the new node (required)")
	cmd.Flags().StringVar(&httpAddr, "http-addr", "", "HTTP address of the new node (required)")
	cmd.Flags().BoolVar(&nonVoter, "non-voter", false, "join as a non-voting member")
	for _, f := range []string{"id", "raft-addr", "http-addr"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

func newClusterRemoveCommand(o *clusterOptions, env []string) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a node from the cluster",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := json.Marshal(map[string]string{"id": args[0]})
			if err != nil {
				return err
			}
			if err := o.membershipCall(cmd.Context(), env, http.MethodDelete, "/remove", body); err != nil {
				return fmt.Errorf("remove node %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s removed\n", args[0])
			return nil
		},
	}
}

// secret finds the cluster secret: the configuration file (or
// CAIRN_CONFIG) with the environment over it.
func (o *clusterOptions) secret(env []string) ([]byte, error) {
	path := o.config
	if path == "" {
		path = lookupEnv(env, "CAIRN_CONFIG")
	}
	if path == "" {
		return []byte(lookupEnv(env, "CAIRN_CLUSTER_SECRET")), nil
	}
	cfg, err := config.Load(path, env)
	if cfg == nil {
		return nil, err
	}
	// Problems elsewhere in the file do not matter here.
	return []byte(cfg.Cluster.Secret.Value()), nil
}

// membershipCall sends a signed /join or /remove to --addr, which passes it
// to the leader.
func (o *clusterOptions) membershipCall(ctx context.Context, env []string, method, path string, body []byte) error {
	secret, err := o.secret(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return cluster.PostMembership(ctx, o.addr, method, path, body, secret)
}
