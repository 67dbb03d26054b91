// Package e2e drives real cairn processes on loopback: it builds (or takes
// from CAIRN_BINARY) the binary, starts nodes with their own data
// directories and ports, and talks to them over HTTP as clients do. The
// tests are behind the "integration" build tag; `make test` runs them.
package e2e
