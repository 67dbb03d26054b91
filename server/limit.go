package server

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cairndb/cairn/cluster"
)

// Load shedding. Two gates stand between a decoded /db call and the
// Store; nothing else (probes, /status, /metrics, …) passes through them.
//
//  1. Pool pressure (Postgres mode, Config.PoolStats set): while the
//     connection pool is pressed (see poolTier) every call is refused at
//     once with 503 and a Retry-After that grows with the pressure. The
//     first call that finds the pool pressed starts shedding; from then on
//     a recovery probe looks at the pool every Config.ShedProbeInterval,
//     and shedding stops at the first look that finds no pressure.
//  2. Concurrency (Config.MaxConcurrent): at most that many calls run on
//     the Store at once. A call past the limit waits up to
//     Config.QueueTimeout for a slot, then is refused with 503 and
//     Retry-After: 1.
//
// A call takes its slot after its body is read and decoded, and gives it
// back as soon as the Store answers, so a slow client neither holds a slot
// while it uploads nor while it downloads the results.

// DefaultShedProbeInterval is how often the pool is looked at again while
// calls are shed for pool pressure.
const DefaultShedProbeInterval = 500 * time.Millisecond

// Reasons of cairn_load_shed_total.
const (
	shedConcurrency = "concurrency"
)

// limiter bounds the calls running at once.
type limiter struct {
	slots   chan struct{}
	timeout time.Duration
	// queued counts the calls waiting for a slot.
	queued atomic.Int64
}

// newLimiter returns a limiter of n slots, or nil (no limit) when n is
// not positive.
func newLimiter(n int, queueTimeout time.Duration) *limiter {
	if n <= 0 {
		return nil
	}
	return &limiter{slots: make(chan struct{}, n), timeout: max(queueTimeout, 0)}
}

// acquire takes a slot, waiting up to the queue timeout for one. ok is
// false when none freed up in time; err is ctx's error when ctx ended
// first.
func (l *limiter) acquire(ctx context.Context) (ok bool, err error) {
	select {
	case l.slots <- struct{}{}:
		return true, nil
	default:
	}
	if l.timeout <= 0 {
		return false, nil
	}
	l.queued.Add(1)
	defer l.queued.Add(-1)
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case l.slots <- struct{}{}:
		return true, nil
	case <-timer.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// release gives a slot back.
func (l *limiter) release() { <-l.slots }

// poolTier is how hard the connection pool is pressed, from none to
// exhausted. With max the pool's size, in_use the connections lent out
// and waiting the calls waiting for one, the first row that holds wins:
//
//	exhausted  in_use = max         and waiting ≥ max          Retry-After: 5
//	critical   in_use ≥ 90% of max  and waiting ≥ max/2        Retry-After: 3
//	pressure   in_use ≥ 75% of max  and waiting ≥ max/4        Retry-After: 2
//	           and more calls wait than connections are free
//	none       otherwise
//
// (the fractions of max are rounded up, so at least one call waits).
// Every tier needs calls waiting for a connection: a pool whose
// connections are all busy but that keeps up with the calls is working,
// not overloaded, and a call that is being handed an idle connection
// counts as waiting for a moment. What the tiers measure is how far
// behind the pool is: with max calls waiting, a new call waits for a whole
// round of statements before it even starts.
type poolTier int32

// The pool tiers, from no pressure to the worst.
const (
	tierNone poolTier = iota
	tierPressure
	tierCritical
	tierExhausted
)

// poolTiers lists the tiers that shed, for the metrics.
var poolTiers = []poolTier{tierPressure, tierCritical, tierExhausted}

// String names the tier.
func (t poolTier) String() string {
	switch t {
	case tierPressure:
		return "pressure"
	case tierCritical:
		return "critical"
	case tierExhausted:
		return "exhausted"
	}
	return "none"
}

// retryAfter is the tier's Retry-After, in seconds.
func (t poolTier) retryAfter() int {
	switch t {
	case tierPressure:
		return 2
	case tierCritical:
		return 3
	case tierExhausted:
		return 5
	}
	return 0
}

// reason is the tier's label in cairn_load_shed_total.
func (t poolTier) reason() string { return "pool_" + t.String() }

// classifyPool returns the tier of a pool's state (see poolTier).
func classifyPool(st cluster.PoolStats) poolTier {
	size, inUse, waiting := int64(st.Max), int64(st.InUse), st.Waiting
	if size <= 0 || waiting <= 0 {
		return tierNone
	}
	switch {
	case inUse >= size && waiting >= size:
		return tierExhausted
	case inUse*10 >= size*9 && waiting >= ceilDiv(size, 2):
		return tierCritical
	case inUse*4 >= size*3 && waiting >= ceilDiv(size, 4) && waiting > size-inUse:
		return tierPressure
	}
	return tierNone
}

// ceilDiv is a/b rounded up, for positive a and b.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// poolShedder refuses calls while the pool is pressed.
type poolShedder struct {
	stats    func() cluster.PoolStats
	interval time.Duration
	// spawn runs the recovery probe in a goroutine the server owns; it
	// reports false when the server is closing.
	spawn func(func(ctx context.Context)) bool

	// tier is the tier calls are shed at; tierNone when they are not.
	// Only a transition from tierNone starts a probe, and only the probe
	// sets it back to tierNone, so at most one probe runs at a time.
	tier atomic.Int32
	// last is the pool state the tier was last decided on, for messages.
	last atomic.Pointer[cluster.PoolStats]
}

// check returns the tier a call is shed at, tierNone to let it through,
// with the pool state behind the decision.
func (p *poolShedder) check() (poolTier, cluster.PoolStats) {
	if t := poolTier(p.tier.Load()); t != tierNone {
		if st := p.last.Load(); st != nil {
			return t, *st
		}
		return t, cluster.PoolStats{}
	}
	st := p.stats()
	t := classifyPool(st)
	if t == tierNone {
		return tierNone, st
	}
	p.last.Store(&st)
	if p.tier.CompareAndSwap(int32(tierNone), int32(t)) && !p.spawn(p.probe) {
		p.tier.Store(int32(tierNone)) // closing: nothing would ever stop it
	}
	return t, st
}

// probe looks at the pool every interval and updates the tier; it returns
// once the pressure is gone (after setting the tier to none) or when ctx
// is done.
func (p *poolShedder) probe(ctx context.Context) {
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		st := p.stats()
		t := classifyPool(st)
		p.last.Store(&st)
		p.tier.Store(int32(t))
		if t == tierNone {
			return
		}
	}
}

// current is the tier calls are being shed at.
func (p *poolShedder) current() poolTier { return poolTier(p.tier.Load()) }

// admit passes a /db call through the load-shedding gates. On success it
// returns the function that gives the call's slot back; otherwise the
// error to answer with. ctx is the call's context, whose deadline also
// bounds the wait for a slot.
func (s *Server) admit(ctx context.Context, timeout time.Duration) (release func(), e *apiError) {
	if s.shedder != nil {
		if t, st := s.shedder.check(); t != tierNone {
			s.metrics.shed.WithLabelValues(t.reason()).Inc()
			msg := fmt.Sprintf("overloaded: the database connection pool is under %s (%d of %d connections in use, %d calls waiting for one); retry in %d s",
				t, st.InUse, st.Max, st.Waiting, t.retryAfter())
			return nil, &apiError{status: http.StatusServiceUnavailable, msg: msg, retryAfter: t.retryAfter()}
		}
	}
	if s.limit == nil {
		return func() {}, nil
	}
	ok, err := s.limit.acquire(ctx)
	switch {
	case err != nil:
		e := mapError(err, readOnly, timeout)
		return nil, &e
	case !ok:
		s.metrics.shed.WithLabelValues(shedConcurrency).Inc()
		msg := fmt.Sprintf("overloaded: %d statement requests are already running on this node (the limit, http.max_concurrent) and none finished within %s (http.queue_timeout); retry later",
			cap(s.limit.slots), s.limit.timeout)
		if s.limit.timeout <= 0 {
			msg = fmt.Sprintf("overloaded: %d statement requests are already running on this node (the limit, http.max_concurrent); retry later", cap(s.limit.slots))
		}
		return nil, &apiError{status: http.StatusServiceUnavailable, msg: msg, retryAfter: 1}
	}
	return s.limit.release, nil
}
