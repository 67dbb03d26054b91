// Package command defines what Cairn writes to its Raft log: a versioned
// protobuf Envelope {version, type, compressed, payload} around a Request
// (statements with typed parameters and a transaction flag), and the codec
// (Encode, Decode) that reads every envelope version up to its own.
//
// Parameters are a protobuf oneof, so int64, float64, text and blobs survive
// the log exactly. Payloads of 1 KiB or more are gzip-compressed when that
// makes them smaller. The generated command.pb.go is committed; regenerate
// it with `make generate` after editing command.proto.
package command
