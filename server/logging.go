package server

import (
	"context"
	"log/slog"
)

// requestHandler is the server's log handler: a record logged with a
// request's context gets the request's ID (unless it names one itself),
// so that every line a request produces can be found by its ID.
type requestHandler struct {
	slog.Handler
}

// Handle adds the request ID from ctx, then hands the record on.
func (h requestHandler) Handle(ctx context.Context, r slog.Record) error {
	if info := infoFrom(ctx); info != nil && !hasAttr(r, logKeyRequestID) {
		r = r.Clone()
		r.AddAttrs(slog.String(logKeyRequestID, info.id))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper around the derived handler.
func (h requestHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the wrapper around the derived handler.
func (h requestHandler) WithGroup(name string) slog.Handler {
	return requestHandler{h.Handler.WithGroup(name)}
}

// hasAttr reports whether r has a top-level attribute named key.
func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}
