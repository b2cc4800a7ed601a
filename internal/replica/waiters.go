package replica

import (
	"sync"

	"github.com/hashicorp/raft"
)

// tokenWaiters tells waiters when the entry that carries their token (in
// raft.Log.Extensions, unique to one forwarded command) passes a point:
// stored in this server's log, or committed.
type tokenWaiters struct {
	mu sync.Mutex
	m  map[string]chan Entry
}

// await returns a channel told the entry that carries token; stop ends
// the wait. ok is false, and nothing awaited, if the token is awaited
// already.
func (w *tokenWaiters) await(token []byte) (told <-chan Entry, stop func(), ok bool) {
	ch := make(chan Entry, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, dup := w.m[string(token)]; dup {
		return nil, func() {}, false
	}
	if w.m == nil {
		w.m = map[string]chan Entry{}
	}
	w.m[string(token)] = ch
	return ch, func() {
		w.mu.Lock()
		delete(w.m, string(token))
		w.mu.Unlock()
	}, true
}

// tell tells the waiters of logs' entries.
func (w *tokenWaiters) tell(logs []*raft.Log) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.m) == 0 {
		return
	}
	for _, l := range logs {
		if ch, ok := w.m[string(l.Extensions)]; ok && len(l.Extensions) > 0 {
			select {
			case ch <- Entry{Index: l.Index, Term: l.Term}:
			default: // told already
			}
		}
	}
}

// len is how many waiters there are.
func (w *tokenWaiters) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}
