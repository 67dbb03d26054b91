package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// maintenanceCache is what Node.Maintenance read, and when.
type maintenanceCache struct {
	state Maintenance
	at    time.Time
}

// Maintenance returns the cluster's maintenance state as this node's copy
// of the database holds it.
func (n *Node) Maintenance(ctx context.Context) (Maintenance, error) {
	if c := n.maint.Load(); c != nil && time.Since(c.at) < maintenanceTTL {
		return c.state, nil
	}
	old := n.maint.Load()
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
	// No table yet means maintenance was never turned on.
	if len(res) == 1 && res[0].Error == "" && len(res[0].Values) == 1 {
		s, _ := res[0].Values[0][0].(string)
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return Maintenance{}, fmt.Errorf("read maintenance state: %q: %w", s, err)
		}
	}
	n.maint.CompareAndSwap(old, &maintenanceCache{state: m, at: time.Now()})
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
func (n *Node) forgetMaintenance() { n.maint.Store(nil) }

// checkMaintenance refuses a write while maintenance mode is on.
func (n *Node) checkMaintenance(ctx context.Context) error {
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
