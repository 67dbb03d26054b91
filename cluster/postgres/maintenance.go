package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairndb/cairn/cluster"
)

// maintenanceTTL bounds how long a node reuses the maintenance state it
// read: another Cairn node sharing the database may change it, and this
// one sees the change within the TTL.
const maintenanceTTL = time.Second

// maintenanceCache is what Maintenance read, when, and in which
// generation: SetMaintenance starts a new one, so a read that began before
// the change is never taken for the state after it.
type maintenanceCache struct {
	state cluster.Maintenance
	at    time.Time
	gen   uint64
}

// Maintenance returns the maintenance state stored in PostgreSQL, shared
// by every Cairn node on the database.
func (b *Backend) Maintenance(ctx context.Context) (cluster.Maintenance, error) {
	gen := b.maintGen.Load()
	if c := b.maint.Load(); c != nil && c.gen == gen && time.Since(c.at) < maintenanceTTL {
		return c.state, nil
	}
	conn, err := b.acquire(ctx)
	if err != nil {
		return cluster.Maintenance{}, fmt.Errorf("read maintenance state: %w", err)
	}
	defer conn.Release()
	var raw string
	err = conn.QueryRow(ctx, "SELECT value FROM "+cluster.SettingsTable+" WHERE key = $1", cluster.MaintenanceKey).Scan(&raw)
	var m cluster.Maintenance
	switch {
	case errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err):
		// Never turned on.
	case err != nil:
		b.noteFailure(err, conn.Conn())
		return cluster.Maintenance{}, fmt.Errorf("read maintenance state: %w", err)
	default:
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return cluster.Maintenance{}, fmt.Errorf("read maintenance state: %q: %w", raw, err)
		}
	}
	b.maint.Store(&maintenanceCache{state: m, at: time.Now(), gen: gen})
	return m, nil
}

// SetMaintenance turns maintenance mode on or off for every Cairn node on
// the database.
func (b *Backend) SetMaintenance(ctx context.Context, enabled bool, reason string) (cluster.Maintenance, error) {
	defer b.maintGen.Add(1)
	m := cluster.Maintenance{Enabled: enabled, Reason: reason, Since: time.Now().UTC().Truncate(time.Millisecond)}
	raw, err := json.Marshal(m)
	if err != nil {
		return cluster.Maintenance{}, err
	}
	conn, err := b.acquire(ctx)
	if err != nil {
		return cluster.Maintenance{}, fmt.Errorf("set maintenance mode: %w", err)
	}
	defer conn.Release()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+cluster.SettingsTable+" (key TEXT PRIMARY KEY, value TEXT NOT NULL)"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO "+cluster.SettingsTable+" (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
			cluster.MaintenanceKey, string(raw))
		return err
	})
	if err != nil {
		b.noteFailure(err, conn.Conn())
		return cluster.Maintenance{}, fmt.Errorf("set maintenance mode: %w", err)
	}
	return m, nil
}

// checkMaintenance refuses a write while maintenance mode is on.
func (b *Backend) checkMaintenance(ctx context.Context) error {
	m, err := b.Maintenance(ctx)
	if err != nil {
		return err
	}
	if m.Enabled {
		if m.Reason != "" {
			return fmt.Errorf("%w (%s)", cluster.ErrMaintenance, m.Reason)
		}
		return cluster.ErrMaintenance
	}
	return nil
}

// isUndefinedTable reports PostgreSQL's "relation does not exist".
func isUndefinedTable(err error) bool {
	var pgErr interface{ SQLState() string }
	return errors.As(err, &pgErr) && pgErr.SQLState() == "42P01"
}
