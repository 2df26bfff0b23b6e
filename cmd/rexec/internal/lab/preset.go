package lab

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Preset is a classic lesson: a workload, the strategies to compare and
// the knobs that make its point.
type Preset struct {
	Name       string
	Lesson     string // what the class should see
	Messages   func() [][]byte
	Strategies []Strategy
	Knobs      Knobs
	// Variants, when set, replace Strategies: runs that differ in a knob.
	Variants []Variant
}

// Variant is one run of a preset.
type Variant struct {
	Label    string
	Strategy Strategy
	Knobs    Knobs
}

// Runs lists the preset's runs, with knobs the caller changed applied
// through adjust (nil: none).
func (p Preset) Runs(adjust func(*Knobs)) []Variant {
	runs := p.Variants
	if runs == nil {
		for _, s := range p.Strategies {
			runs = append(runs, Variant{Strategy: s, Knobs: p.Knobs})
		}
	}
	out := make([]Variant, len(runs))
	for i, v := range runs {
		if adjust != nil {
			adjust(&v.Knobs)
		}
		out[i] = v
	}
	return out
}

// LookupPreset returns the lesson of that name.
func LookupPreset(name string) (Preset, bool) {
	p, ok := presets()[name]
	return p, ok
}

// presets are the named lessons, made anew for each caller.
func presets() map[string]Preset {
	return map[string]Preset{
		"classic": {
			Name:       "classic",
			Lesson:     "five small sends glue together when the reader is slower than the writer; a length prefix recovers them",
			Messages:   func() [][]byte { return Numbered("hello", 5) },
			Strategies: []Strategy{Raw, Sleep, LenI, Frames},
			Knobs:      Knobs{ReaderDelay: 30 * time.Millisecond},
		},
		"split": {
			Name:       "split",
			Lesson:     "with a tiny receive buffer one message arrives in pieces (半包); framing reassembles it",
			Messages:   func() [][]byte { return Numbered("hello", 5) },
			Strategies: []Strategy{Raw, LenBE, Frames},
			Knobs:      Knobs{ReadBuffer: 1},
		},
		"leftover": {
			Name:       "leftover",
			Lesson:     "ssh-lite: a long command output read with recv(1024) leaves bytes that arrive as the answer to the next command",
			Messages:   func() [][]byte { return [][]byte{Listing(40), []byte("Sun Nov 22 10:00:00 UTC 2026\n")} },
			Strategies: []Strategy{Raw, Ack, LenI, JSONHeader},
			Knobs:      Knobs{ReaderDelay: 10 * time.Millisecond},
		},
		"md5-trailer": {
			Name:   "md5-trailer",
			Lesson: "a file followed by its md5: the receiver's last recv() swallows the md5 into the file body",
			Messages: func() [][]byte {
				body := Listing(30)
				sum := md5.Sum(body)
				return [][]byte{body, []byte(hex.EncodeToString(sum[:]))}
			},
			Strategies: []Strategy{Raw, Sleep, JSONHeader, Frames},
			Knobs:      Knobs{ReaderDelay: 10 * time.Millisecond},
		},
		"command-glued": {
			Name:       "command-glued",
			Lesson:     "a command and the data after it arrive in one recv(): the server parses 'put a.txt' plus the file's first bytes as the command",
			Messages:   func() [][]byte { return [][]byte{[]byte("put a.txt"), Listing(3)} },
			Strategies: []Strategy{Raw, Ack, JSONHeader, Frames},
			Knobs:      Knobs{ReaderDelay: 10 * time.Millisecond},
		},
		"binary": {
			Name:       "binary",
			Lesson:     "a delimiter works for text and breaks on binary data that happens to contain it",
			Messages:   func() [][]byte { return Binary(5, 200) },
			Strategies: []Strategy{Delimiter, LenBE, Frames},
		},
		"nagle": {
			Name:     "nagle",
			Lesson:   "write header, write body, wait for the answer: with Nagle on, the body waits for the delayed ack (about 40 ms)",
			Messages: func() [][]byte { return Numbered("request", 10) },
			Variants: []Variant{
				{Label: "len-be, Nagle on", Strategy: LenBE, Knobs: Knobs{SplitHeader: true, Reply: true, Nagle: true}},
				{Label: "len-be, Nagle off", Strategy: LenBE, Knobs: Knobs{SplitHeader: true, Reply: true}},
				{Label: "len-be, one write", Strategy: LenBE, Knobs: Knobs{Reply: true, Nagle: true}},
			},
		},
		"trickle": {
			Name:       "trickle",
			Lesson:     "a sender that writes a few bytes at a time: every message arrives split unless it is framed",
			Messages:   func() [][]byte { return Numbered("hello", 5) },
			Strategies: []Strategy{Raw, Delimiter, LenI},
			Knobs:      Knobs{Trickle: 3, TricklePause: 2 * time.Millisecond},
		},
	}
}

// PresetNames lists the presets in order.
func PresetNames() []string {
	var names []string
	for n := range presets() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Numbered is n messages "word 1", "word 2", ...
func Numbered(word string, n int) [][]byte {
	m := make([][]byte, n)
	for i := range m {
		m[i] = []byte(fmt.Sprintf("%s %d", word, i+1))
	}
	return m
}

// Listing is an `ls -l`-like output of n lines.
func Listing(n int) []byte {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("total %d\n", n*4))
	for i := range n {
		fmt.Fprintf(&b, "-rw-r--r-- 1 student student %6d Nov 22 10:%02d report-%03d.txt\n", (i+1)*1031%99991, i%60, i+1)
	}
	return []byte(b.String())
}

// Binary is n messages of size pseudo-random bytes, each holding at least
// one '\n' (the same bytes every run).
func Binary(n, size int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	m := make([][]byte, n)
	for i := range m {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		b[size/2] = '\n'
		m[i] = b
	}
	return m
}
