package command

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

//go:generate protoc --go_out=. --go_opt=paths=source_relative command.proto

// Version is the envelope format this binary writes. Decode accepts every
// version up to it.
const Version = 1

// compressThreshold is the payload size from which Encode tries gzip. Small
// entries are left alone: the gzip header alone is 18 bytes.
const compressThreshold = 1024

// maxDecompressed bounds what a compressed payload may inflate to, so a
// corrupt or hostile entry cannot exhaust memory.
const maxDecompressed = 1 << 30

// ErrUnknownVersion is returned by Decode for an envelope written by a newer
// binary than this one.
var ErrUnknownVersion = errors.New("command: unknown envelope version")

// Encode serialises a request of the given type into a log entry. The
// payload is gzip-compressed when that makes it smaller.
func Encode(typ Type, req *Request) ([]byte, error) {
	env := &Envelope{Version: Version, Type: typ}
	if req != nil {
		payload, err := proto.Marshal(req)
		if err != nil {
			return nil, fmt.Errorf("marshal request: %w", err)
		}
		if len(payload) >= compressThreshold {
			if z, err := compress(payload); err == nil && len(z) < len(payload) {
				payload = z
				env.Compressed = true
			}
		}
		env.Payload = payload
	}
	b, err := proto.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("marshal envelope: %w", err)
	}
	return b, nil
}

// Decode parses a log entry written by Encode (this or an older version).
func Decode(b []byte) (Type, *Request, error) {
	var env Envelope
	if err := proto.Unmarshal(b, &env); err != nil {
		return Type_TYPE_UNSPECIFIED, nil, fmt.Errorf("unmarshal envelope: %w", err)
	}
	if env.Version == 0 || env.Version > Version {
		return Type_TYPE_UNSPECIFIED, nil, fmt.Errorf("%w: %d (this binary reads up to %d)", ErrUnknownVersion, env.Version, Version)
	}
	payload := env.Payload
	if env.Compressed {
		var err error
		if payload, err = decompress(payload); err != nil {
			return env.Type, nil, fmt.Errorf("decompress payload: %w", err)
		}
	}
	req := &Request{}
	if err := proto.Unmarshal(payload, req); err != nil {
		return env.Type, nil, fmt.Errorf("unmarshal request: %w", err)
	}
	return env.Type, req, nil
}

func compress(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func decompress(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxDecompressed+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecompressed {
		return nil, fmt.Errorf("payload inflates beyond %d bytes", maxDecompressed)
	}
	return out, nil
}
