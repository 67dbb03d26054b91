// Package server is Cairn's HTTP API. Its /db endpoints, /status, /nodes
// and /readyz are shaped like rqlite's HTTP API, so existing rqlite client
// libraries (gorqlite, pyrqlite, rqlite-go-http, …) work against a Cairn node
// unchanged; /livez is Cairn's own.
//
// The package sits on top of the stack: it declares the narrow Store
// interface it calls (the method set of cluster.Backend), decodes requests
// into statemachine/command types, and is the only place that maps backend
// errors to HTTP status codes.
//
// # Requests
//
// POST /db/execute, GET|POST /db/query and POST /db/request take a JSON
// array of statements. Each statement is either an SQL string or an array
// whose first element is the SQL and whose other elements are parameters:
//
//	["CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT, data BLOB)"]
//	[["INSERT INTO foo(name, data) VALUES(?, ?)", "fiona", [1, 2, 255]]]
//	[["SELECT * FROM foo WHERE name = :name", {"name": "fiona"}]]
//
// A parameter is null, a boolean, a string, a number or a BLOB. A number
// that is an integer and fits a signed 64-bit integer stays exact; other
// numbers are 64-bit floats; an integer outside the int64 range is refused.
// As in rqlite, a BLOB is either an array of integers 0-255 or a string in
// SQLite's hex-literal form x'0102FF'. An object gives named parameters.
// /db/query also accepts a single statement as GET /db/query?q=SQL.
//
// Error messages count statements and parameters from 0: "statement 1,
// parameter 0" is the first parameter after the SQL of the second statement.
//
// # Responses
//
// Successful calls answer 200 with {"results": [...]}: one entry per
// statement, with "error" inside the entry when that statement failed in
// SQL. A request that fails as a whole answers {"error": "..."} with a
// status that fits (400, 401, 403, 404, 405, 413, 500, 503, 504). Every
// response carries an X-Request-Id header; the ID is also in every log
// line the request produces (the server's logger adds it to any record
// logged with the request's context).
//
// # Load shedding
//
// Statement calls run under Config.MaxConcurrent: past it a call waits up
// to Config.QueueTimeout for a slot, then is answered 503 with
// Retry-After: 1. In Postgres mode (Config.PoolStats set) calls are also
// refused while the connection pool is pressed, with a Retry-After of 2, 3
// or 5 seconds by tier, until a recovery probe finds the pressure gone
// (limit.go has the tiers). Probes, /status and /metrics are never shed.
//
// # Authentication
//
// With users (Config.Users, replaced at run time by SetUsers) every
// endpoint but the probes, /internal/, /join and /remove asks for HTTP
// Basic credentials (401 with a challenge otherwise) and a permission
// (403 otherwise): read for /db/query, write for /db/execute and
// /db/request, status for /status, /nodes and /metrics, backup for
// /v1/backups, admin for everything else.
//
// # Metrics
//
// GET /metrics serves the HTTP, statement, load-shedding, Raft and (in
// Postgres mode) pool metrics, all prefixed cairn_, plus Config.Collectors.
package server
