// Package sqlitecomplete is the state machine of SQLite's
// sqlite3_complete: fed the tokens of SQL text one by one, it tells which
// ';' ends a statement and which sits inside a CREATE TRIGGER body (the
// body ends at an END that directly follows a ';', so the END of a CASE
// does not close it). Tokenizing (quotes, comments) is the caller's; the
// statement analysis of the state machine and the migration splitter both
// drive this one machine.
package sqlitecomplete

import "strings"

// Class is a token's class as the machine sees it.
type Class uint8

// The token classes. Whitespace and comments are not fed at all: they
// never change the state.
const (
	Semi Class = iota
	Other
	Explain
	Create
	Temp
	Trigger
	End
)

// The machine's states.
const (
	stateStart   = iota // at the start of a statement
	stateNormal         // inside an ordinary statement
	stateExplain        // after EXPLAIN
	stateCreate         // after CREATE (and TEMP)
	stateTrigger        // inside CREATE TRIGGER
	stateSemi           // after a ';' inside a trigger
	stateEnd            // after "; END" inside a trigger
)

// transitions is sqlite3_complete's table without its whitespace column.
var transitions = [7][7]uint8{
	//              SEMI        OTHER         EXPLAIN       CREATE       TEMP          TRIGGER       END
	stateStart:   {stateStart, stateNormal, stateExplain, stateCreate, stateNormal, stateNormal, stateNormal},
	stateNormal:  {stateStart, stateNormal, stateNormal, stateNormal, stateNormal, stateNormal, stateNormal},
	stateExplain: {stateStart, stateExplain, stateNormal, stateCreate, stateNormal, stateNormal, stateNormal},
	stateCreate:  {stateStart, stateNormal, stateNormal, stateNormal, stateCreate, stateTrigger, stateNormal},
	stateTrigger: {stateSemi, stateTrigger, stateTrigger, stateTrigger, stateTrigger, stateTrigger, stateTrigger},
	stateSemi:    {stateSemi, stateTrigger, stateTrigger, stateTrigger, stateTrigger, stateTrigger, stateEnd},
	stateEnd:     {stateStart, stateTrigger, stateTrigger, stateTrigger, stateTrigger, stateTrigger, stateTrigger},
}

// Machine follows the statements of one text. The zero Machine is at the
// start of a statement.
type Machine struct {
	state uint8
}

// Next feeds one token's class and reports whether it was a ';' that ends
// the statement.
func (m *Machine) Next(c Class) (ends bool) {
	m.state = transitions[m.state][c]
	return c == Semi && m.state == stateStart
}

// InTrigger reports whether the text so far stops inside a CREATE TRIGGER
// body (one without its closing "END;").
func (m *Machine) InTrigger() bool {
	return m.state == stateTrigger || m.state == stateSemi
}

// Reset puts the machine at the start of a statement.
func (m *Machine) Reset() { m.state = stateStart }

// WordClass is the class of an unquoted word (any case).
func WordClass(w string) Class {
	switch len(w) {
	case 3:
		if strings.EqualFold(w, "end") {
			return End
		}
	case 4:
		if strings.EqualFold(w, "temp") {
			return Temp
		}
	case 6:
		if strings.EqualFold(w, "create") {
			return Create
		}
	case 7:
		if strings.EqualFold(w, "explain") {
			return Explain
		}
		if strings.EqualFold(w, "trigger") {
			return Trigger
		}
	case 9:
		if strings.EqualFold(w, "temporary") {
			return Temp
		}
	}
	return Other
}
