//go:build !race

package format

// raceEnabled: see race_test.go.
const raceEnabled = false
