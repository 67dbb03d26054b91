// Package s3test runs a real S3 server for tests: versitygw, an
// S3 gateway over a directory, started on a free loopback port with a
// t.TempDir() root and stopped when the test ends.
//
// The binary is found at $CAIRN_VERSITYGW, else at .cache/bin/versitygw
// under the module root, else on PATH. Without it the test fails (it does
// not skip): `make test-deps` installs it.
package s3test
