package frame

import "slices"

// signal is one signal of the protocol: its name on the wire (SignalMsg,
// ExitMsg), its Linux number (for the 128+N exit status a shell reports)
// and whether a client may ask for it to be delivered.
type signal struct {
	name    string
	number  int
	deliver bool
}

// signals is the one table of signal names: the daemon maps the
// deliverable ones to its OS's signals, the client maps names in exit
// messages to statuses.
var signals = [...]signal{
	{"HUP", 1, true}, {"INT", 2, true}, {"QUIT", 3, true}, {"ILL", 4, false},
	{"TRAP", 5, false}, {"ABRT", 6, false}, {"BUS", 7, false}, {"FPE", 8, false},
	{"KILL", 9, true}, {"USR1", 10, true}, {"SEGV", 11, false}, {"USR2", 12, true},
	{"PIPE", 13, true}, {"ALRM", 14, true}, {"TERM", 15, true}, {"STKFLT", 16, false},
	{"CHLD", 17, false}, {"CONT", 18, true}, {"STOP", 19, true}, {"TSTP", 20, false},
	{"TTIN", 21, false}, {"TTOU", 22, false}, {"URG", 23, false}, {"XCPU", 24, false},
	{"XFSZ", 25, false}, {"VTALRM", 26, false}, {"PROF", 27, false}, {"WINCH", 28, true},
	{"IO", 29, false}, {"PWR", 30, false}, {"SYS", 31, false},
}

// SignalNames returns the names of the signals a SignalMsg may carry.
func SignalNames() []string {
	var out []string
	for _, s := range signals {
		if s.deliver {
			out = append(out, s.name)
		}
	}
	return out
}

// SignalNumber returns the Linux number of a signal name ("TERM" is 15),
// or 0 for a name the protocol does not know.
func SignalNumber(name string) int {
	i := slices.IndexFunc(signals[:], func(s signal) bool { return s.name == name })
	if i < 0 {
		return 0
	}
	return signals[i].number
}

// deliverable reports whether a SignalMsg may carry name.
func deliverable(name string) bool {
	i := slices.IndexFunc(signals[:], func(s signal) bool { return s.name == name })
	return i >= 0 && signals[i].deliver
}
