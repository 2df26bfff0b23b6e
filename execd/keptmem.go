package execd

import (
	"cmp"
	"fmt"
	"sync"
)

// keptMemory is the bound of acct's output kept in memory.
func (s *Server) keptMemory(acct *account) memoryBudget {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.memUsers == nil {
		s.memUsers = map[string]*budget{}
		s.memAll = &budget{max: cmp.Or(s.ResumeMemory, DefaultResumeMemory)}
	}
	u := s.memUsers[acct.user.Name]
	if u == nil {
		u = &budget{max: cmp.Or(s.ResumeMemoryPerUser, DefaultResumeMemoryPerUser)}
		s.memUsers[acct.user.Name] = u
	}
	return memoryBudget{user: u, all: s.memAll, name: acct.user.Name}
}

// KeptMemory is the memory reserved for output kept for clients
// (resumable commands, detached jobs without JobDir), in bytes.
func (s *Server) KeptMemory() int64 {
	s.mu.Lock()
	all := s.memAll
	s.mu.Unlock()
	if all == nil {
		return 0
	}
	return all.load()
}

// budget is a bound on bytes, taken and given back.
type budget struct {
	mu   sync.Mutex
	used int64
	max  int64
}

// load is what is taken now.
func (b *budget) load() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// memoryBudget is a user's share of the kept memory and the daemon's whole.
type memoryBudget struct {
	user, all *budget
	name      string
}

// take reserves n bytes from both, or says why not.
func (m memoryBudget) take(n int64) string {
	m.user.mu.Lock()
	defer m.user.mu.Unlock()
	if m.user.used+n > m.user.max {
		return fmt.Sprintf("user %s's commands keep %d bytes of output in memory, their bound of %d", m.name, m.user.used, m.user.max)
	}
	m.all.mu.Lock()
	defer m.all.mu.Unlock()
	if m.all.used+n > m.all.max {
		return fmt.Sprintf("the daemon keeps %d bytes of commands' output in memory, its bound of %d", m.all.used, m.all.max)
	}
	m.user.used += n
	m.all.used += n
	return ""
}

// give returns n bytes to both.
func (m memoryBudget) give(n int64) {
	for _, b := range []*budget{m.user, m.all} {
		b.mu.Lock()
		b.used -= n
		b.mu.Unlock()
	}
}
