package main

import "testing"

func TestWantsShell(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want bool
	}{
		{nil, false},
		{[]string{"uname", "-a"}, false},
		{[]string{"ls"}, false},
		{[]string{"ls / | wc -l"}, true},
		{[]string{"cd /tmp && ls"}, true},
		{[]string{"echo $HOME"}, true},
		{[]string{"cd", "/tmp", "&&", "ls"}, true},
		{[]string{"export", "A=1"}, true},
		{[]string{"A=1", "env"}, true},
		{[]string{"=1", "env"}, false},
		{[]string{"1A=1", "env"}, false},
		{[]string{"echo", "a b"}, false}, // several words: exact argv, as given
		{[]string{"printf", "%s\n", "x"}, false},
		{[]string{"/usr/bin/id"}, false},
		{[]string{"for i in 1 2; do echo $i; done"}, true},
	} {
		if got := wantsShell(tc.argv); got != tc.want {
			t.Errorf("wantsShell(%q) = %v, want %v", tc.argv, got, tc.want)
		}
	}
}
