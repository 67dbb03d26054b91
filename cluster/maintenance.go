package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cairndb/cairn/statemachine/command"
)

// ErrMaintenance means the cluster is in maintenance mode: writes are
// paused until an operator turns it off; reads and backups go on.
var ErrMaintenance = errors.New("maintenance mode: writes are paused")

// Maintenance is the cluster's maintenance state. It is cluster state: kept
// in the replicated database (Raft mode) or in PostgreSQL (Postgres mode),
// so every node agrees and it survives leader changes and restarts.
type Maintenance struct {
	Enabled bool `json:"enabled"`
	// Reason is the operator's note, shown in /status and /healthz.
	Reason string `json:"reason,omitempty"`
	// Since is when it was last turned on or off; zero if never.
	Since time.Time `json:"since,omitzero"`
}

// SettingsTable holds cluster-wide settings as key and JSON value, in the
// replicated database (and, in Postgres mode, in PostgreSQL); the _cairn_
// prefix is reserved.
const SettingsTable = "_cairn_settings"

// MaintenanceKey is the settings key of the maintenance state.
const MaintenanceKey = "maintenance"

// maintenanceTTL bounds how long a node reuses the state it read. The
// leader drops its copy whenever it changes the state or gains leadership,
// so the TTL only matters for a state another leader set.
const maintenanceTTL = 250 * time.Millisecond

// maintenanceCache is what Node.Maintenance read, when, and in which
// generation: forgetMaintenance starts a new one, so a read that began
// before a change can never be taken for the state after it.
type maintenanceCache struct {
	state Maintenance
	at    time.Time
	gen   uint64
}

// Maintenance returns the cluster's maintenance state as this node's copy
// of the database holds it.
func (n *Node) Maintenance(ctx context.Context) (Maintenance, error) {
	gen := n.maintGen.Load()
	if c := n.maint.Load(); c != nil && c.gen == gen && time.Since(c.at) < maintenanceTTL {
		return c.state, nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	p, _ := command.NewParam("", MaintenanceKey)
	res, err := n.db.Query(ctx, &command.Request{Statements: []*command.Statement{
		{Sql: "SELECT value FROM " + SettingsTable + " WHERE key = ?", Params: []*command.Param{p}, ReturnsRows: true},
	}})
	if err != nil {
		return Maintenance{}, fmt.Errorf("read maintenance state: %w", err)
	}
	var m Maintenance
	switch {
	case len(res) != 1:
		return Maintenance{}, fmt.Errorf("read maintenance state: %d results for 1 statement", len(res))
	case strings.Contains(res[0].Error, "no such table"):
		// Maintenance mode was never turned on.
	case res[0].Error != "":
		return Maintenance{}, fmt.Errorf("read maintenance state: %s", res[0].Error)
	case len(res[0].Values) == 1:
		s, _ := res[0].Values[0][0].(string)
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return Maintenance{}, fmt.Errorf("read maintenance state: %q: %w", s, err)
		}
	}
	n.maint.Store(&maintenanceCache{state: m, at: time.Now(), gen: gen})
	return m, nil
}

// SetMaintenance turns maintenance mode on or off for the whole cluster.
// It must run on the leader; the change is committed through the log
// before it returns, and from then on this leader refuses writes with
// ErrMaintenance.
func (n *Node) SetMaintenance(ctx context.Context, enabled bool, reason string) (Maintenance, error) {
	defer n.forgetMaintenance()
	if err := n.checkLeader(); err != nil {
		return Maintenance{}, err
	}
	m := Maintenance{Enabled: enabled, Reason: reason, Since: time.Now().UTC().Truncate(time.Millisecond)}
	b, err := json.Marshal(m)
	if err != nil {
		return Maintenance{}, err
	}
	pk, _ := command.NewParam("", MaintenanceKey)
	pv, _ := command.NewParam("", string(b))
	err = n.applyInternal(ctx, &command.Request{Transaction: true, Statements: []*command.Statement{
		{Sql: "CREATE TABLE IF NOT EXISTS " + SettingsTable + " (key TEXT PRIMARY KEY, value TEXT NOT NULL)"},
		{Sql: "INSERT INTO " + SettingsTable + " (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", Params: []*command.Param{pk, pv}},
	}})
	if err != nil {
		return Maintenance{}, fmt.Errorf("set maintenance mode: %w", err)
	}
	return m, nil
}

// forgetMaintenance drops the cached state, so the next check reads it.
func (n *Node) forgetMaintenance() { n.maintGen.Add(1) }

// checkMaintenance refuses a write while maintenance mode is on. It runs
// on the leader; a node that has just become leader first waits, once,
// until it has applied every entry committed before its term, so that it
// cannot miss a change made under the previous leader.
func (n *Node) checkMaintenance(ctx context.Context) error {
	if !n.leaderSynced.Load() {
		if err := waitFuture(ctx, n.raft.Barrier(n.applyTimeout(ctx))); err != nil {
			return n.raftError("catch up before the first write of this term", err, false)
		}
		n.leaderSynced.Store(true)
		n.forgetMaintenance()
	}
	m, err := n.Maintenance(ctx)
	if err != nil {
		return err
	}
	if m.Enabled {
		if m.Reason != "" {
			return fmt.Errorf("%w (%s)", ErrMaintenance, m.Reason)
		}
		return ErrMaintenance
	}
	return nil
}
