package main

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/cairndb/cairn/cmd/cairn/config"
)

// logOutput is the process's log destination, whose level and format
// SIGHUP may change while every logger derived from it keeps its
// attributes (node, component, request_id…).
type logOutput struct {
	w     io.Writer
	level slog.LevelVar
	// base is the handler for the current format; gen counts its
	// replacements, so that derived handlers rebuild theirs.
	base atomic.Pointer[slog.Handler]
	gen  atomic.Uint64
}

// newLogOutput builds the output for the [log] section.
func newLogOutput(c config.Log, w io.Writer) *logOutput {
	o := &logOutput{w: w}
	o.set(c)
	return o
}

// set applies a [log] section.
func (o *logOutput) set(c config.Log) {
	o.level.Set(c.SlogLevel())
	opts := &slog.HandlerOptions{Level: &o.level}
	var h slog.Handler
	if c.Format == "json" {
		h = slog.NewJSONHandler(o.w, opts)
	} else {
		h = slog.NewTextHandler(o.w, opts)
	}
	o.base.Store(&h)
	o.gen.Add(1)
}

// logger returns a logger on the output.
func (o *logOutput) logger() *slog.Logger {
	return slog.New(&switchHandler{out: o})
}

// switchHandler is a slog.Handler on a logOutput: the chain of WithAttrs
// and WithGroup calls that derived it is replayed on the current base
// handler whenever that changes.
type switchHandler struct {
	out   *logOutput
	chain []func(slog.Handler) slog.Handler
	// built caches the chain applied to the base of one generation.
	built atomic.Pointer[builtHandler]
}

type builtHandler struct {
	gen uint64
	h   slog.Handler
}

func (s *switchHandler) current() slog.Handler {
	gen := s.out.gen.Load()
	if b := s.built.Load(); b != nil && b.gen == gen {
		return b.h
	}
	h := *s.out.base.Load()
	for _, f := range s.chain {
		h = f(h)
	}
	s.built.Store(&builtHandler{gen: gen, h: h})
	return h
}

// Enabled reports whether level is logged at the current level.
func (s *switchHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= s.out.level.Level()
}

// Handle writes the record with the current format.
func (s *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return s.current().Handle(ctx, r)
}

// WithAttrs derives a handler that adds attrs.
func (s *switchHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return s.derive(func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
}

// WithGroup derives a handler that puts later attributes in a group.
func (s *switchHandler) WithGroup(name string) slog.Handler {
	return s.derive(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

func (s *switchHandler) derive(f func(slog.Handler) slog.Handler) slog.Handler {
	chain := make([]func(slog.Handler) slog.Handler, len(s.chain), len(s.chain)+1)
	copy(chain, s.chain)
	return &switchHandler{out: s.out, chain: append(chain, f)}
}
