package command

import (
	"errors"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestCodec_RoundTrip(t *testing.T) {
	params := []any{nil, true, int64(math.MaxInt64), int64(math.MinInt64), int64(9007199254740993), 1.5, "text", []byte{0, 1, 255}}
	var ps []*Param
	for _, v := range params {
		p, err := NewParam("", v)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	named, _ := NewParam("name", "fiona")
	cases := []struct {
		name string
		req  *Request
	}{
		{"Small", &Request{Transaction: true, Statements: []*Statement{{Sql: "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", Params: ps}, {Sql: "SELECT :name", Params: []*Param{named}, ReturnsRows: true}}}},
		{"LargeCompressed", &Request{Statements: []*Statement{{Sql: "INSERT INTO t VALUES ('" + strings.Repeat("abc", 2000) + "')"}}}},
		{"Empty", &Request{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := Encode(Type_TYPE_EXECUTE, c.req)
			if err != nil {
				t.Fatal(err)
			}
			typ, got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if typ != Type_TYPE_EXECUTE || !proto.Equal(got, c.req) {
				t.Errorf("round trip changed the request: %v != %v", got, c.req)
			}
			if c.name == "LargeCompressed" && len(b) > 1000 {
				t.Errorf("a 6 KB repetitive statement encoded to %d bytes: not compressed", len(b))
			}
		})
	}
	for i, v := range params {
		got := ps[i].GoValue()
		if b, ok := v.([]byte); ok {
			if string(got.([]byte)) != string(b) {
				t.Errorf("param %d = %v, want %v", i, got, v)
			}
			continue
		}
		if got != v {
			t.Errorf("param %d = %#v, want %#v", i, got, v)
		}
	}
}

func TestCodec_DecodeRejects(t *testing.T) {
	newer, _ := proto.Marshal(&Envelope{Version: Version + 1, Type: Type_TYPE_EXECUTE})
	unversioned, _ := proto.Marshal(&Envelope{Type: Type_TYPE_EXECUTE})
	badZip, _ := proto.Marshal(&Envelope{Version: Version, Type: Type_TYPE_EXECUTE, Compressed: true, Payload: []byte("not gzip")})
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"NewerVersion", newer, "unknown envelope version"},
		{"NoVersion", unversioned, "unknown envelope version"},
		{"Garbage", []byte{0xff, 0xff, 0xff}, "unmarshal envelope"},
		{"BadCompression", badZip, "decompress"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Decode(c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
	if _, _, err := Decode(newer); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("newer version: %v is not ErrUnknownVersion", err)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]Level{"": LevelWeak, "weak": LevelWeak, "none": LevelNone, "strong": LevelStrong, "linearizable": LevelLinearizable} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("eventual"); err == nil || !strings.Contains(err.Error(), "eventual") {
		t.Errorf("ParseLevel(eventual) err = %v", err)
	}
}

func TestNewParam_Rejects(t *testing.T) {
	if _, err := NewParam("", uint64(math.MaxUint64)); err == nil {
		t.Error("uint64 above int64 accepted")
	}
	if _, err := NewParam("", struct{}{}); err == nil {
		t.Error("struct accepted")
	}
}

func BenchmarkEncode(b *testing.B) {
	p1, _ := NewParam("", "fiona")
	p2, _ := NewParam("", int64(20))
	req := &Request{Statements: []*Statement{{Sql: "INSERT INTO foo(name, age) VALUES(?, ?)", Params: []*Param{p1, p2}}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(Type_TYPE_EXECUTE, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	p1, _ := NewParam("", "fiona")
	enc, _ := Encode(Type_TYPE_EXECUTE, &Request{Statements: []*Statement{{Sql: "INSERT INTO foo(name, age) VALUES(?, ?)", Params: []*Param{p1}}}})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
