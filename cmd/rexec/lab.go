package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/execd-project/execd/cmd/rexec/internal/lab"
)

// labCommand is `rexec lab`: the sticky-packet lab, run locally over
// loopback TCP (and UDP), no daemon needed.
// labOptions are rexec lab's flags.
type labOptions struct {
	preset, strategies, color string
	messages                  int
	k                         lab.Knobs
	noView, udp, overflow     bool
	list                      bool
}

// labLong and labExample are rexec lab's help.
const (
	labLong = `lab sends messages over a real loopback TCP connection under each framing
strategy and shows what the receiver saw: one line per read() with its
byte range, length and time, the message boundaries drawn over the bytes
('|' between messages, headers in hex within ⟨⟩), each message marked
intact, glued (粘包) or split (半包), and a table comparing the runs.

Strategies: raw (no framing), sleep (pause between sends), ack
(stop-and-wait), len-i (struct 'i': native order, signed), len-be
(struct '>I'), json-header (struct 'i' header length + JSON header +
body, the 报头 version), json-header8 (u64 header length), delimiter
('\n'), frame (execd's own protocol).

Knobs make each lesson reproducible; a preset sets them for a classic
lesson, and flags given with it change them. --udp shows UDP's contrast;
--overflow shows which headers can say the length of a file over 2 GiB
(a sparse file: nothing is sent).`
	labExample = `  rexec lab                                   # the classic demo: five sends, a slow reader
  rexec lab --preset leftover                 # ssh-lite's leftover output
  rexec lab --strategy raw,len-i --buffer 1   # 半包: one byte per read
  rexec lab --preset nagle                    # the 40 ms write-write-read stall
  rexec lab --strategy all --reader-delay 20ms
  rexec lab --udp --overflow
  rexec lab --list`
)

func labCommand(ctx context.Context, e env) *cobra.Command {
	var o labOptions
	cmd := &cobra.Command{
		Use:           "lab [flags]",
		Short:         "Show why TCP needs framing: every classic strategy side by side",
		Long:          labLong,
		Example:       labExample,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(c *cobra.Command, _ []string) error {
			return o.run(ctx, e, c.Flags().Changed)
		},
	}
	o.register(cmd.Flags())
	return cmd
}

// register defines rexec lab's flags on f.
func (o *labOptions) register(f *pflag.FlagSet) {
	k := &o.k
	f.StringVar(&o.preset, "preset", "classic", "a classic lesson: "+strings.Join(lab.PresetNames(), ", "))
	f.StringVar(&o.strategies, "strategy", "", "strategies to compare, comma-separated, or all (default: the preset's)")
	f.IntVar(&o.messages, "messages", 0, "send N small messages \"hello 1\"... instead of the preset's workload")
	f.IntVar(&k.ReadBuffer, "buffer", 0, "bytes per read(), as recv(N) (default 1024, or the preset's)")
	f.DurationVar(&k.ReaderDelay, "reader-delay", 0, "the receiver sleeps this long before each read()")
	f.BoolVar(&k.Batch, "batch", false, "the sender writes every message in one write()")
	f.IntVar(&k.Trickle, "trickle", 0, "the sender writes at most N bytes per write()")
	f.DurationVar(&k.TricklePause, "trickle-pause", time.Millisecond, "pause between trickled writes")
	f.BoolVar(&k.SplitHeader, "split-header", false, "header and body in two write()s")
	f.BoolVar(&k.Nagle, "nagle", false, "switch Nagle's algorithm on at the sender (Go switches it off)")
	f.BoolVar(&k.Reply, "reply", false, "the receiver answers each message; the sender waits for it")
	f.DurationVar(&k.Pause, "pause", 50*time.Millisecond, "the sleep strategy's pause between messages")
	f.BoolVar(&o.noView, "no-view", false, "only the comparison table, not every read")
	f.StringVar(&o.color, "color", "auto", "colour the message boundaries: auto, always or never")
	f.BoolVar(&o.udp, "udp", false, "the UDP contrast: boundaries kept, truncation, the 65,507-byte limit")
	f.BoolVar(&o.overflow, "overflow", false, "which headers can say the length of a 2 GiB+1 file (a sparse file)")
	f.BoolVar(&o.list, "list", false, "list the presets and strategies")
}

// run runs the lessons the flags ask for; changed tells a flag given.
func (o *labOptions) run(ctx context.Context, e env, changed func(string) bool) error {
	if o.list {
		listLab(e)
		return nil
	}
	col, err := useColor(o.color, e)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	if !(o.udp || o.overflow) || changed("preset") || changed("strategy") {
		if err := runLab(ctx, e, o.preset, o.strategies, o.messages, o.k, changed, !o.noView, col); err != nil {
			return result(err)
		}
	}
	if o.udp {
		r, err := lab.UDP(ctx, o.k.ReadBuffer)
		if err != nil {
			return fail(1, "udp: %v", err)
		}
		lab.ViewUDP(e.stdout, r, max(o.k.ReadBuffer, 1024))
	}
	if o.overflow {
		return showOverflow(e)
	}
	return nil
}

// showOverflow shows which headers can say the length of a file over
// 2 GiB, on a sparse file of that size.
func showOverflow(e env) error {
	dir, err := os.MkdirTemp("", "rexec-lab")
	if err != nil {
		return fail(1, "%v", err)
	}
	defer func() { _ = os.RemoveAll(dir) }() // a sparse file: no space to give back
	path := filepath.Join(dir, "big.iso")
	if err := lab.SparseFile(path, 2<<30+1); err != nil {
		return fail(1, "sparse file: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fail(1, "%v", err)
	}
	fmt.Fprintf(e.stdout, "(a sparse file of %d bytes, made with truncate: it takes no disk space)\n", fi.Size())
	lab.Overflow(e.stdout, fi.Size())
	return nil
}

// runLab runs the TCP part: the preset's runs, with the knobs given on the
// command line applied over the preset's.
func runLab(ctx context.Context, e env, name, strategies string, n int, flags lab.Knobs, changed func(string) bool, view, color bool) error {
	p, ok := lab.LookupPreset(name)
	if !ok {
		return fail(exitUsage, "no preset %q (one of %s)", name, strings.Join(lab.PresetNames(), ", "))
	}
	if strategies != "" {
		var list []lab.Strategy
		if strategies == "all" {
			list = lab.Strategies()
		} else {
			for _, s := range strings.Split(strategies, ",") {
				st, err := lab.ParseStrategy(strings.TrimSpace(s))
				if err != nil {
					return fail(exitUsage, "%v", err)
				}
				list = append(list, st)
			}
		}
		p.Strategies, p.Variants = list, nil
	}
	msgs := p.Messages()
	if n > 0 {
		msgs = lab.Numbered("hello", n)
	}
	if flags.ReadBuffer < 0 || flags.Trickle < 0 || n < 0 {
		return fail(exitUsage, "--buffer, --trickle and --messages cannot be negative")
	}
	adjust := func(k *lab.Knobs) {
		for _, c := range []struct {
			flag  string
			apply func()
		}{
			{"buffer", func() { k.ReadBuffer = flags.ReadBuffer }},
			{"reader-delay", func() { k.ReaderDelay = flags.ReaderDelay }},
			{"batch", func() { k.Batch = flags.Batch }},
			{"trickle", func() { k.Trickle = flags.Trickle }},
			{"trickle-pause", func() { k.TricklePause = flags.TricklePause }},
			{"split-header", func() { k.SplitHeader = flags.SplitHeader }},
			{"nagle", func() { k.Nagle = flags.Nagle }},
			{"reply", func() { k.Reply = flags.Reply }},
			{"pause", func() { k.Pause = flags.Pause }},
		} {
			if changed(c.flag) {
				c.apply()
			}
		}
	}
	fmt.Fprintf(e.stdout, "lesson %q: %s\n\n", p.Name, p.Lesson)
	var results []*lab.Result
	for _, v := range p.Runs(adjust) {
		r, err := lab.Run(ctx, v.Strategy, msgs, v.Knobs)
		if err != nil {
			return fail(1, "%s: %v", v.Strategy, err)
		}
		r.Label = v.Label
		if view {
			lab.View(e.stdout, r, color)
		}
		results = append(results, r)
	}
	lab.Table(e.stdout, results)
	fmt.Fprintln(e.stdout)
	return nil
}

func listLab(e env) {
	fmt.Fprintln(e.stdout, "presets:")
	for _, n := range lab.PresetNames() {
		p, _ := lab.LookupPreset(n)
		fmt.Fprintf(e.stdout, "  %-14s %s\n", n, p.Lesson)
	}
	fmt.Fprintln(e.stdout, "strategies:")
	for _, s := range lab.Strategies() {
		fmt.Fprintf(e.stdout, "  %-14s %s\n", s, s.Describe())
	}
}
