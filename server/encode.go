package server

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/cairndb/cairn/statemachine/command"
)

// endpoint says which /db endpoint produced results; it decides their JSON
// shape and whether a failure may have left a write behind.
type endpoint int

const (
	endpointExecute endpoint = iota
	endpointQuery
	endpointRequest
)

func (e endpoint) String() string {
	switch e {
	case endpointExecute:
		return "execute"
	case endpointQuery:
		return "query"
	}
	return "request"
}

// The JSON shapes below follow rqlite's command/encoding package, field
// order and omission rules included: zero counters and times are left out,
// an empty "values" is left out, and associative rows are always present.

// dbResponse is the body of a successful /db call.
type dbResponse struct {
	Results []any   `json:"results"`
	Time    float64 `json:"time,omitempty"`
}

// writeResult is the outcome of a statement that yields no rows.
type writeResult struct {
	LastInsertID int64   `json:"last_insert_id,omitempty"`
	RowsAffected int64   `json:"rows_affected,omitempty"`
	Error        string  `json:"error,omitempty"`
	Time         float64 `json:"time,omitempty"`
	// Rows is JSON null for a write in an associative /db/request, so that
	// clients can tell it from a query, as in rqlite.
	Rows json.RawMessage `json:"rows,omitempty"`
}

// rowsResult is the outcome of a statement that yields rows. Columns and
// types are always present (gorqlite indexes them unconditionally).
type rowsResult struct {
	Columns []string `json:"columns"`
	Types   []string `json:"types"`
	Values  [][]any  `json:"values,omitempty"`
	Time    float64  `json:"time,omitempty"`
}

// assocRowsResult is rowsResult with ?associative: each row is an object.
type assocRowsResult struct {
	Types map[string]string `json:"types,omitempty"`
	Rows  []map[string]any  `json:"rows"`
	Error string            `json:"error,omitempty"`
	Time  float64           `json:"time,omitempty"`
}

// errorResult is a statement that failed in SQL.
type errorResult struct {
	Error string  `json:"error"`
	Time  float64 `json:"time,omitempty"`
}

// errorResponse is the body of a request that failed as a whole.
type errorResponse struct {
	Error string `json:"error"`
}

// encodeOptions are the query options that change the JSON of results.
type encodeOptions struct {
	timings     bool
	associative bool
	blobArray   bool
}

// newDBResponse converts backend results into the JSON body. It fails only
// on a value of a type the backend contract does not allow.
func newDBResponse(results []command.Result, ep endpoint, opts encodeOptions, elapsed time.Duration) (*dbResponse, error) {
	resp := &dbResponse{Results: make([]any, 0, len(results))}
	for i, r := range results {
		v, err := newResult(r, ep, opts)
		if err != nil {
			return nil, fmt.Errorf("encode result %d: %w", i, err)
		}
		resp.Results = append(resp.Results, v)
	}
	if opts.timings {
		resp.Time = elapsed.Seconds()
	}
	return resp, nil
}

// newResult picks the shape of one result: rows for /db/query and for any
// result with columns, a write result otherwise.
func newResult(r command.Result, ep endpoint, opts encodeOptions) (any, error) {
	var t float64
	if opts.timings {
		t = finite(r.Seconds)
	}
	rows := ep == endpointQuery || r.Columns != nil
	switch {
	case rows && opts.associative:
		return newAssocRows(r, t, opts.blobArray)
	case r.Error != "" && (rows || ep == endpointRequest):
		return &errorResult{Error: r.Error, Time: t}, nil
	case rows:
		return newRows(r, t, opts.blobArray)
	}
	w := &writeResult{
		LastInsertID: r.LastInsertID,
		RowsAffected: r.RowsAffected,
		Error:        r.Error,
		Time:         t,
	}
	if ep == endpointRequest && opts.associative {
		w.Rows = json.RawMessage("null")
	}
	return w, nil
}

func newRows(r command.Result, t float64, blobArray bool) (*rowsResult, error) {
	if len(r.Types) != len(r.Columns) {
		return nil, fmt.Errorf("%d columns but %d types", len(r.Columns), len(r.Types))
	}
	out := &rowsResult{Columns: r.Columns, Types: r.Types, Time: t}
	if out.Columns == nil {
		out.Columns, out.Types = []string{}, []string{}
	}
	if len(r.Values) > 0 {
		out.Values = make([][]any, len(r.Values))
	}
	for i, row := range r.Values {
		vals := make([]any, len(row))
		for j, v := range row {
			jv, err := jsonValue(v, blobArray)
			if err != nil {
				return nil, fmt.Errorf("row %d, column %d: %w", i, j, err)
			}
			vals[j] = jv
		}
		out.Values[i] = vals
	}
	return out, nil
}

func newAssocRows(r command.Result, t float64, blobArray bool) (*assocRowsResult, error) {
	if len(r.Types) != len(r.Columns) {
		return nil, fmt.Errorf("%d columns but %d types", len(r.Columns), len(r.Types))
	}
	out := &assocRowsResult{
		Types: make(map[string]string, len(r.Columns)),
		Rows:  make([]map[string]any, len(r.Values)),
		Error: r.Error,
		Time:  t,
	}
	for i, c := range r.Columns {
		out.Types[c] = r.Types[i]
	}
	for i, row := range r.Values {
		if len(row) != len(r.Columns) {
			return nil, fmt.Errorf("row %d has %d values for %d columns", i, len(row), len(r.Columns))
		}
		m := make(map[string]any, len(row))
		for j, v := range row {
			jv, err := jsonValue(v, blobArray)
			if err != nil {
				return nil, fmt.Errorf("row %d, column %q: %w", i, r.Columns[j], err)
			}
			m[r.Columns[j]] = jv
		}
		out.Rows[i] = m
	}
	return out, nil
}

// jsonValue converts a column value into what encoding/json writes as
// rqlite does: int64 exactly, float64, string, null, []byte as base64 (or
// an array of integers with ?blob_array). Postgres mode adds bool,
// json.RawMessage (json and jsonb columns, written as they are) and []any
// (arrays). JSON has no infinities: they are
// written as ±9e999, which is how SQLite's own JSON functions write them
// and which parses back as infinity in JavaScript and Python; NaN is null.
func jsonValue(v any, blobArray bool) (any, error) {
	switch x := v.(type) {
	case nil, int64, string, bool, json.RawMessage:
		return x, nil
	case float64:
		return jsonFloat(x), nil
	case []byte:
		if blobArray {
			return byteArray(x), nil
		}
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float32:
		return jsonFloat(float64(x)), nil
	case []any: // a PostgreSQL array
		out := make([]any, len(x))
		for i, e := range x {
			jv, err := jsonValue(e, blobArray)
			if err != nil {
				return nil, fmt.Errorf("array element %d: %w", i, err)
			}
			out[i] = jv
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported value type %T", v)
}

func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return nil
	case math.IsInf(f, 1):
		return json.RawMessage("9e999")
	case math.IsInf(f, -1):
		return json.RawMessage("-9e999")
	}
	return f
}

// finite replaces a non-finite duration by 0 so that it always encodes.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// byteArray is a BLOB written as a JSON array of integers.
type byteArray []byte

// MarshalJSON writes the bytes as [1,2,255].
func (b byteArray) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2+4*len(b))
	out = append(out, '[')
	for i, c := range b {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendUint(out, uint64(c), 10)
	}
	return append(out, ']'), nil
}

// writeJSON writes v as the response body with the given status. HTML
// characters are not escaped (as rqlite); ?pretty indents by four spaces.
func writeJSON(w http.ResponseWriter, status int, v any, pretty bool) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if pretty {
		enc.SetIndent("", "    ")
	}
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	return nil
}
