package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/execd-project/execd/cmd/internal/naive"
)

// runNaive is the client of the teaching mode (--framing=off), written as
// the classic lesson writes it: send the command line, recv(N) once, print
// what came. Commands come from the command line (one) or from stdin, one
// per line.
func runNaive(ctx context.Context, opts *options, args []string, e env) error {
	if opts.recvBuffer < 1 {
		return fail(exitUsage, "--recv-buffer wants at least 1 byte, got %d", opts.recvBuffer)
	}
	d, status, err := opts.newDialer(e)
	if err != nil {
		return fail(status, "%v", err)
	}
	defer d.close()
	_, hostport := splitUser(args[0])
	tgt, err := d.fc.Resolve(hostport, opts.port)
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	dl := net.Dialer{Timeout: opts.connectTimeout}
	c, err := dl.DialContext(ctx, "tcp", tgt.Addr)
	if err != nil {
		return fail(exitTransport, "%v", err)
	}
	defer func() { _ = c.Close() }() // the lesson is over
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	fmt.Fprintf(e.stderr, "rexec: TEACHING MODE: framing off, plaintext, no login; each answer is one recv(%d) of whatever has arrived\n", opts.recvBuffer)

	nc := &naive.Client{Conn: c, RecvBuffer: opts.recvBuffer}
	ask := func(line string) error {
		n, err := nc.Ask(line, e.stdout)
		switch {
		case errors.Is(err, naive.ErrNoAnswer):
			fmt.Fprintf(e.stderr, "rexec: no answer within %v (with no framing, an empty answer and a slow one look the same)\n", naive.DefaultAnswerWait)
			return nil
		case err == nil && opts.verbose:
			fmt.Fprintf(e.stderr, "\nrexec: [one recv: %d bytes]\n", n)
		}
		return err
	}

	argv := args[1:]
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) > 0 {
		if err := ask(strings.Join(argv, " ")); err != nil {
			return fail(exitTransport, "%v", err)
		}
		return nil
	}
	tty := isTerminal(e.stdin)
	sc := bufio.NewScanner(e.stdin)
	for {
		if tty {
			fmt.Fprint(e.stderr, ">>> ")
		}
		if !sc.Scan() {
			break
		}
		line := strings.TrimSpace(sc.Text())
		switch line {
		case "":
			continue
		case "exit", "quit":
			return nil
		}
		if err := ask(line); err != nil {
			return fail(exitTransport, "%v", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fail(1, "reading commands: %v", err)
	}
	return nil
}
