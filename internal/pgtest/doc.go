// Package pgtest runs a real PostgreSQL for tests: a fresh cluster made
// with initdb in a temporary directory, served by the postgres binary on a
// free loopback port, with a password-protected superuser, and stopped and
// deleted when the test ends.
//
// The binaries are found in $CAIRN_PG_BIN, else in the newest
// /usr/lib/postgresql/*/bin (Debian's layout), else on PATH. Without them
// the test fails (it does not skip): `make test-deps` installs Debian's
// postgresql package. When the tests run as root, the server runs as the
// postgres user, as PostgreSQL refuses to run as root.
//
// A Server can be stopped and started again on the same port and data, so
// tests can restart PostgreSQL under load.
package pgtest
