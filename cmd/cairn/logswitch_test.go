package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cairndb/cairn/cmd/cairn/config"
)

// TestLogOutput_Switch: level and format change at run time, and derived
// loggers keep their attributes across the change.
func TestLogOutput_Switch(t *testing.T) {
	var buf bytes.Buffer
	out := newLogOutput(config.Log{Level: "info", Format: "text"}, &buf)
	log := out.logger().With("node", "2").WithGroup("g").With("k", "v")

	log.Debug("hidden")
	log.Info("as text")
	out.set(config.Log{Level: "debug", Format: "json"})
	log.Debug("as json")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", lines)
	}
	if !strings.Contains(lines[0], "msg=\"as text\" node=2 g.k=v") {
		t.Errorf("text line: %s", lines[0])
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatalf("json line %q: %v", lines[1], err)
	}
	if m["msg"] != "as json" || m["level"] != "DEBUG" || m["node"] != "2" || m["g"].(map[string]any)["k"] != "v" {
		t.Errorf("json line: %s", lines[1])
	}
}
