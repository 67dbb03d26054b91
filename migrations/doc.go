// Package migrations will hold Cairn's versioned schema migrations and the
// runner that applies them over a small Execer interface that both backends
// satisfy. It is delivered by the migrations issue (#6); until then it
// holds no code.
package migrations
