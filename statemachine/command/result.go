package command

import "fmt"

// NewValue builds a Value from a value of a Result row: nil, int64,
// float64, string or []byte. Any other type is an error: the database never
// returns one.
func NewValue(v any) (*Value, error) {
	switch x := v.(type) {
	case nil:
		return &Value{}, nil
	case int64:
		return &Value{Value: &Value_I{I: x}}, nil
	case float64:
		return &Value{Value: &Value_D{D: x}}, nil
	case string:
		return &Value{Value: &Value_S{S: x}}, nil
	case []byte:
		return &Value{Value: &Value_Y{Y: x}}, nil
	}
	return nil, fmt.Errorf("unsupported result value type %T", v)
}

// GoValue returns the value as a Result holds it: nil, int64, float64,
// string or []byte. An empty blob is a non-nil empty slice, as the database
// returns it.
func (v *Value) GoValue() any {
	switch x := v.GetValue().(type) {
	case *Value_I:
		return x.I
	case *Value_D:
		return x.D
	case *Value_S:
		return x.S
	case *Value_Y:
		if x.Y == nil {
			return []byte{}
		}
		return x.Y
	}
	return nil
}

// NewStatementResult converts a Result into its protobuf form.
func NewStatementResult(r Result) (*StatementResult, error) {
	m := &StatementResult{
		Columns:      r.Columns,
		Types:        r.Types,
		LastInsertId: r.LastInsertID,
		RowsAffected: r.RowsAffected,
		Error:        r.Error,
		Seconds:      r.Seconds,
		HasColumns:   r.Columns != nil,
	}
	if len(r.Values) > 0 {
		m.Rows = make([]*Row, len(r.Values))
	}
	for i, row := range r.Values {
		pr := &Row{Values: make([]*Value, len(row))}
		for j, v := range row {
			pv, err := NewValue(v)
			if err != nil {
				return nil, fmt.Errorf("row %d, column %d: %w", i, j, err)
			}
			pr.Values[j] = pv
		}
		m.Rows[i] = pr
	}
	return m, nil
}

// GoResult converts the protobuf form back into the Result it was made
// from: Columns (and Types) are nil exactly when they were, Values is nil
// when there are no rows.
func (m *StatementResult) GoResult() Result {
	r := Result{
		Columns:      m.GetColumns(),
		Types:        m.GetTypes(),
		LastInsertID: m.GetLastInsertId(),
		RowsAffected: m.GetRowsAffected(),
		Error:        m.GetError(),
		Seconds:      m.GetSeconds(),
	}
	if m.GetHasColumns() {
		if r.Columns == nil {
			r.Columns = []string{}
		}
		if r.Types == nil {
			r.Types = []string{}
		}
	}
	if rows := m.GetRows(); len(rows) > 0 {
		r.Values = make([][]any, len(rows))
		for i, pr := range rows {
			row := make([]any, len(pr.GetValues()))
			for j, pv := range pr.GetValues() {
				row[j] = pv.GoValue()
			}
			r.Values[i] = row
		}
	}
	return r
}

// NewStatementResults converts results into their protobuf form.
func NewStatementResults(rs []Result) ([]*StatementResult, error) {
	if rs == nil {
		return nil, nil
	}
	out := make([]*StatementResult, len(rs))
	for i, r := range rs {
		m, err := NewStatementResult(r)
		if err != nil {
			return nil, fmt.Errorf("result %d: %w", i, err)
		}
		out[i] = m
	}
	return out, nil
}

// GoResults converts the protobuf form of results back into Results. The
// slice is never nil.
func GoResults(ms []*StatementResult) []Result {
	out := make([]Result, len(ms))
	for i, m := range ms {
		out[i] = m.GoResult()
	}
	return out
}
