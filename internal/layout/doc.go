// Package layout holds the test that keeps Cairn's package map honest: data
// flows one way (cmd → server → cluster → statemachine → command), and a
// package that imports one above it fails the build's tests.
package layout
