package turn

import (
	"net"
	"sync"
)

// tracker counts allocations per user and in total, knows who owns each
// allocation (for 441) and keeps the live relays for the metrics.
type tracker struct {
	exempt  map[string]bool
	mu      sync.Mutex
	perUser map[string]int
	total   int
	relays  map[int]*relayConn // by relay port
	owners  map[string]string  // five-tuple key -> user name
	ownerOf map[int]string     // relay port -> five-tuple key
	retired relayTotals
	created uint64
}

// relayTotals sums the counters of closed allocations.
type relayTotals struct {
	toPeerPackets, toPeerBytes, toClientPackets, toClientBytes, dropped uint64
	fastToPeer, fastToClient, noPermission                              uint64
}

// add sums one relay's counters into r.
func (r *relayTotals) add(st *relayStats) {
	r.toPeerPackets += st.toPeerPackets.Load()
	r.toPeerBytes += st.toPeerBytes.Load()
	r.toClientPackets += st.toClientPackets.Load()
	r.toClientBytes += st.toClientBytes.Load()
	r.dropped += st.dropped.Load()
	r.fastToPeer += st.fastToPeer.Load()
	r.fastToClient += st.fastToClient.Load()
	r.noPermission += st.noPermission.Load()
}

func newTracker(exempt []string) *tracker {
	t := &tracker{perUser: map[string]int{}, relays: map[int]*relayConn{}, owners: map[string]string{}, ownerOf: map[int]string{}, exempt: map[string]bool{}}
	for _, u := range exempt {
		t.exempt[u] = true
	}
	return t
}

// admits reports whether user may make one more allocation.
func (t *tracker) admits(user string, userQuota, totalQuota int) (userOK, totalOK bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return userQuota == 0 || t.exempt[user] || t.perUser[user] < userQuota, totalQuota == 0 || t.total < totalQuota
}

// reserve counts one allocation for user when both quotas allow it.
func (t *tracker) reserve(user string, userQuota, totalQuota int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if (userQuota > 0 && !t.exempt[user] && t.perUser[user] >= userQuota) || (totalQuota > 0 && t.total >= totalQuota) {
		return false
	}
	t.perUser[user]++
	t.total++
	return true
}

// release undoes reserve.
func (t *tracker) release(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.releaseLocked(user)
}

func (t *tracker) releaseLocked(user string) {
	if t.perUser[user]--; t.perUser[user] <= 0 {
		delete(t.perUser, user)
	}
	t.total--
}

func (t *tracker) addRelay(c *relayConn) {
	t.mu.Lock()
	t.relays[c.port] = c
	t.mu.Unlock()
}

// removeRelay forgets a closed relay: its quota, its owner, its counters.
func (t *tracker) removeRelay(c *relayConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.relays[c.port] == c {
		delete(t.relays, c.port)
	}
	if key, ok := t.ownerOf[c.port]; ok {
		delete(t.owners, key)
		delete(t.ownerOf, c.port)
	}
	t.releaseLocked(c.user)
	t.retired.add(&c.stats)
}

// relay returns the live relay bound to port, or nil.
func (t *tracker) relay(port int) *relayConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.relays[port]
}

// allocated records the owner of a new allocation.
func (t *tracker) allocated(src, dst net.Addr, username string, relay net.Addr) {
	port := portOf(relay)
	key := fiveTupleKey(src, dst)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.relays[port]; !ok {
		return // already closed
	}
	t.owners[key] = username
	t.ownerOf[port] = key
	t.created++
}

// owner returns the user name that created the allocation of a five-tuple.
func (t *tracker) owner(src, dst net.Addr) (string, bool) {
	key := fiveTupleKey(src, dst)
	t.mu.Lock()
	defer t.mu.Unlock()
	u, ok := t.owners[key]
	return u, ok
}

// totals sums live and closed relays' counters (scrape time only).
func (t *tracker) totals() (relayTotals, int, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.retired
	for _, c := range t.relays {
		r.add(&c.stats)
	}
	return r, t.total, t.created
}
