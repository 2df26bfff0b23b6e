package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// naiveAnswerWait is how long the naive client waits for an answer: with no
// framing, an empty answer looks exactly like a slow one.
const naiveAnswerWait = 5 * time.Second

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

	buf := make([]byte, opts.recvBuffer)
	ask := func(line string) error {
		if _, err := c.Write([]byte(line)); err != nil {
			return err
		}
		if err := c.SetReadDeadline(time.Now().Add(naiveAnswerWait)); err != nil {
			return err
		}
		n, err := c.Read(buf) // the one recv of the lesson
		var ne net.Error
		switch {
		case n > 0:
			_, _ = e.stdout.Write(buf[:n]) // the lesson prints what came, however it came
			if opts.verbose {
				fmt.Fprintf(e.stderr, "\nrexec: [one recv: %d bytes]\n", n)
			}
			return nil
		case errors.As(err, &ne) && ne.Timeout():
			fmt.Fprintf(e.stderr, "rexec: no answer within %v (with no framing, an empty answer and a slow one look the same)\n", naiveAnswerWait)
			return nil
		case errors.Is(err, io.EOF):
			return errors.New("the daemon closed the connection")
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
