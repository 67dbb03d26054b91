package main

import (
	"context"
	"fmt"

	"github.com/cairndb/cairn/cmd/cairn/config"
	"github.com/cairndb/cairn/server"
)

// serverOps are the server settings of the operations keys: load
// shedding (http.max_concurrent, http.queue_timeout), the access log
// (http.access_log) and authentication ([auth]). Build them with
// newServerOps before anything is opened, since that can fail, and apply
// them to the server.Config each serve path builds.
type serverOps struct {
	http  config.HTTP
	auth  config.Auth
	users *server.UserSet
}

// newServerOps reads the operations settings of cfg.
func newServerOps(cfg *config.Config) (serverOps, error) {
	users, err := authUsers(cfg)
	if err != nil {
		return serverOps{}, err
	}
	return serverOps{http: cfg.HTTP, auth: cfg.Auth, users: users}, nil
}

// apply returns c with the operations settings filled in.
func (o serverOps) apply(c server.Config) server.Config {
	c.MaxConcurrent = o.http.MaxConcurrent
	c.QueueTimeout = o.http.QueueTimeout
	c.AccessLog = o.http.AccessLog
	c.Users = o.users
	c.MetricsOpen = !o.auth.Metrics
	return c
}

// authUsers builds the API's users from auth.users; an empty set (no
// entries) leaves the API open. Load has already validated the entries.
func authUsers(cfg *config.Config) (*server.UserSet, error) {
	users, err := server.NewUserSet(cfg.AuthUsers())
	if err != nil {
		return nil, fmt.Errorf("auth.users: %w", err)
	}
	return users, nil
}

// authStep applies [auth] (auth.users, auth.metrics) to a running server,
// for a SIGHUP reload.
func authStep(srv *server.Server) func(context.Context, *config.Config) error {
	return func(_ context.Context, next *config.Config) error {
		users, err := authUsers(next)
		if err != nil {
			return err
		}
		srv.SetUsers(users)
		srv.SetMetricsOpen(!next.Auth.Metrics)
		return nil
	}
}
