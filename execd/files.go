package execd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/execd-project/execd/frame"
	"github.com/execd-project/execd/internal/mux"
	"github.com/execd-project/execd/internal/xfer"
)

// servedDir is the directory file channels are confined to and commands
// start in: Server.Dir, or the home directory of the daemon's user.
func (s *Server) servedDir() string {
	if s.Dir != "" {
		return s.Dir
	}
	if home, err := os.UserHomeDir(); err == nil {
		return home
	}
	return "/"
}

// fileBase is what get, put and fs channels share.
type fileBase struct {
	c   *serverConn
	nc  mux.NewChannel // accepted in run, after the file system has answered
	ch  *mux.Channel
	id  uint32
	m   *frame.OpenMsg
	ctx context.Context
}

// openGet, openTail, openPut and openFS are the handlers of the file
// kinds. Each does its work (and its file system calls) in run, which
// confirms or refuses the open: the read loop never waits for a disk.
func (c *serverConn) openGet(nc mux.NewChannel) {
	b := c.fileBase(nc)
	c.runFile(b, (&getChan{fileBase: b, out: nc.Outbound(frame.Data, b.m.Window)}).run)
}

func (c *serverConn) openTail(nc mux.NewChannel) {
	b := c.fileBase(nc)
	c.runFile(b, (&tailChan{fileBase: b, out: nc.Outbound(frame.Data, b.m.Window)}).run)
}

func (c *serverConn) openPut(nc mux.NewChannel) {
	b := c.fileBase(nc)
	pc := &putChan{fileBase: b, in: nc.Inbound(frame.Data, max(c.srv.Window, DefaultFileWindow)), done: make(chan frame.DoneMsg, 1)}
	nc.OnControl(frame.Done, mux.On(pc.doneMsg))
	c.runFile(b, pc.run)
}

func (c *serverConn) openFS(nc mux.NewChannel) {
	b := c.fileBase(nc)
	fc := &fsChan{fileBase: b, reqs: make(chan *frame.FileRequest, maxPendingRequests)}
	nc.OnControl(frame.Request, mux.On(fc.request))
	c.runFile(b, fc.run)
}

// fileBase is what every file channel has, for the channel nc opens.
func (c *serverConn) fileBase(nc mux.NewChannel) fileBase {
	return fileBase{c: c, nc: nc, ch: nc.Channel, id: nc.ID(), m: nc.OpenMsg(), ctx: nc.Context()}
}

// runFile runs a file channel's work; the channel is finished after it.
func (c *serverConn) runFile(b fileBase, run func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer b.ch.Finish() // a no-op after fail or the peer's close
		run()
	}()
}

// accept confirms the channel; false means the connection is gone.
func (b *fileBase) accept(ok *frame.OpenOKMsg) bool {
	_, err := b.nc.Accept(ok)
	return err == nil
}

// fail reports err on the channel, which ends it for the client.
func (b *fileBase) fail(err error) {
	em := xfer.ErrorFor(b.m.Path, err)
	if em.Code == frame.CodeQuota {
		b.c.srv.Metrics.quotaRefused()
	}
	if b.m.Kind != frame.KindFS {
		b.audit(b.m.Kind, b.m.Path, "", nil, "", em)
	}
	b.c.log.Info("file operation failed", "channel", b.id, "kind", b.m.Kind, "path", b.m.Path, "code", em.Code, "err", em.Message)
	b.ch.Fail(em.Code, em.Message)
}

// audit records a file operation in the audit log.
func (b *fileBase) audit(op, p, to string, size *uint64, hash string, err error) {
	a := b.c.srv.Audit
	if a == nil {
		return
	}
	ev := &AuditEvent{Event: op, User: b.c.account().user.Name, Addr: b.c.nc.RemoteAddr().String(), Path: xfer.Display(p), Size: size, Hash: hash, Result: "ok"}
	if to != "" {
		ev.To = xfer.Display(to)
	}
	if err != nil {
		ev.Result = xfer.ErrorFor(p, err).Message
	}
	a.Log(ev)
}

// quota is the usage tracker of the account's home, nil without a quota.
func (b *fileBase) quota() *quota {
	if a := b.c.account(); a.hasQuota() {
		return b.c.srv.quotas.get(a.home)
	}
	return nil
}

// openRoot opens the file system the account works in (account.files):
// a confined user's home, through which every path is resolved so that
// nothing outside can be reached, or the machine as the user's account.
func (b *fileBase) openRoot() (xfer.FS, error) { return b.c.account().files() }

// resolve resolves a path from the wire for the account (account.resolve).
func (b *fileBase) resolve(cwd, p string) (string, error) { return b.c.account().resolve(cwd, p) }

// getChan sends one file.
type getChan struct {
	fileBase
	out *mux.Outbound
}

func (g *getChan) run() {
	stop := context.AfterFunc(g.ctx, func() { g.out.Abort(context.Cause(g.ctx)) })
	defer stop()
	start := time.Now()
	root, err := g.openRoot()
	if err != nil {
		g.fail(err)
		return
	}
	defer root.Close()
	p, err := g.resolve(g.c.account().startDir(), g.m.Path)
	if err != nil {
		g.fail(err)
		return
	}
	g.m.Path = p
	f, fi, err := g.c.account().openRead(root, p)
	if err != nil {
		g.fail(err)
		return
	}
	defer f.Close()
	if fi.IsDir() {
		g.fail(xfer.Errorf(frame.CodeIsDir, "%s: is a directory (use -r)", xfer.Display(p)))
		return
	}
	if !fi.Mode().IsRegular() {
		g.fail(xfer.Errorf(frame.CodeNotSupported, "%s: not a regular file", xfer.Display(p)))
		return
	}
	size := uint64(fi.Size())
	h, _, err := xfer.NewHash(g.m.Hash)
	if err != nil {
		g.fail(err)
		return
	}
	var off uint64
	if o := g.m.Offset; o > 0 && o <= size {
		if _, err := xfer.HashPrefix(f, h, o); err != nil {
			g.fail(err)
			return
		}
		if hex.EncodeToString(h.Sum(nil)) == g.m.PrefixHash {
			off = o
		} else {
			h.Reset() // the client's copy differs: start over
		}
	}
	src, err := xfer.NewSource(f, xfer.Display(p), h, off, size)
	if err != nil {
		g.fail(err)
		return
	}
	defer src.Close()
	info := xfer.Info(path.Base(p), fi, "")
	if !g.accept(&frame.OpenOKMsg{Window: 1, Offset: off, Info: &info}) {
		return
	}
	n, err := g.out.ReadFrom(src)
	if err != nil {
		if g.out.Failed() {
			g.c.log.Info("get interrupted", "channel", g.id, "path", p, "sent", n, "cause", context.Cause(g.ctx))
			return
		}
		g.fail(err)
		return
	}
	_ = g.out.Close() // best effort: a dead connection fails the next send too
	sum := src.Sum()
	g.audit(frame.KindGet, p, "", &size, sum, nil) // before the client hears of it, as a put's
	g.c.srv.Metrics.addBytes("out", "file", n)
	g.c.srv.Metrics.transferred(frame.KindGet, time.Since(start))
	_ = g.ch.SendJSON(frame.Done, &frame.DoneMsg{Size: size, Hash: sum})
	g.c.log.Info("file sent", "channel", g.id, "path", p, "size", size, "resumed_at", off,
		"sent", n, "hash", g.m.Hash, "sum", sum, "duration_ms", time.Since(start).Milliseconds())
}

// putChan receives one file.
type putChan struct {
	fileBase
	in   *mux.Inbound
	done chan frame.DoneMsg
}

// doneMsg takes the client's done, which run waits for after the data.
func (pc *putChan) doneMsg(_ *mux.Channel, m *frame.DoneMsg) error {
	select {
	case pc.done <- *m:
		return nil
	default:
		return mux.Violationf(frame.CodeUnexpected, "second done on put channel %d", pc.id)
	}
}

// sizeGuard stops a put whose data runs past the size it announced.
type sizeGuard struct {
	w     io.Writer
	left  uint64
	shown string
}

func (g *sizeGuard) Write(p []byte) (int, error) {
	if uint64(len(p)) > g.left {
		return 0, xfer.Errorf(frame.CodeIntegrity, "%s: more data than the announced size", g.shown)
	}
	g.left -= uint64(len(p))
	return g.w.Write(p)
}

func (pc *putChan) run() {
	// The channel's end (close, the connection's end, shutdown) stops the
	// data after what has arrived, which is written and kept for a resume.
	stop := context.AfterFunc(pc.ctx, func() { pc.in.Interrupt(context.Cause(pc.ctx)) })
	defer stop()
	start := time.Now()
	root, err := pc.openRoot()
	if err != nil {
		pc.fail(err)
		return
	}
	defer root.Close()
	t, err := pc.prepare(root)
	if err != nil {
		pc.fail(err)
		return
	}
	off := t.sink.Offset()
	if !pc.accept(&frame.OpenOKMsg{Window: pc.in.Window(), Offset: off, PrefixHash: t.sink.PrefixSum()}) {
		t.keep()
		return
	}
	d, err := pc.receive(t)
	if err != nil {
		if pc.ctx.Err() != nil || errors.Is(err, mux.ErrLost) || errors.Is(err, mux.ErrAbandoned) {
			// Interrupted: keep what arrived so that the client can resume.
			pc.c.log.Info("put interrupted", "channel", pc.id, "path", t.path, "kept", t.sink.Written(), "cause", err)
			t.keep()
			return
		}
		t.discard()
		pc.fail(err)
		return
	}
	if err := pc.commit(root, t, d); err != nil {
		pc.fail(err)
		return
	}
	// Recorded before the client hears of it: the audit log's order is
	// the order in which the client saw its operations complete.
	pc.audit(frame.KindPut, t.path, "", &d.Size, d.Hash, nil)
	pc.c.srv.Metrics.addBytes("in", "file", int64(d.Size-off))
	pc.c.srv.Metrics.transferred(frame.KindPut, time.Since(start))
	_ = pc.ch.SendJSON(frame.Done, &frame.DoneMsg{Size: d.Size, Hash: d.Hash})
	pc.c.log.Info("file received", "channel", pc.id, "path", t.path, "size", d.Size, "resumed_at", off,
		"hash", pc.m.Hash, "sum", d.Hash, "duration_ms", time.Since(start).Milliseconds())
}

// putTarget is where a put's data goes: the partial copy and the quota
// charge for its new bytes (nil without a quota).
type putTarget struct {
	path string
	sink *xfer.Sink
	qc   *charge
	w    io.Writer // the sink, through the quota
}

// keep closes the partial copy for a resume.
func (t *putTarget) keep() {
	t.sink.Close()
	t.qc.end(0)
}

// discard removes the partial copy, and its bytes from the usage.
func (t *putTarget) discard() {
	n := int64(t.sink.Written())
	t.sink.Discard()
	if t.qc != nil {
		t.qc.end(-n)
	}
}

// prepare resolves the put's path and opens its partial copy (resumed
// when the client asked and the copy is not longer than the file), with
// the quota reserved for the bytes still to come.
func (pc *putChan) prepare(root xfer.FS) (*putTarget, error) {
	p, err := pc.resolve(pc.c.account().startDir(), pc.m.Path)
	if err != nil {
		return nil, err
	}
	pc.m.Path = p
	if p == "." || p == "/" {
		return nil, xfer.Errorf(frame.CodeIsDir, "%s: is a directory", xfer.Display(p))
	}
	sink, err := xfer.OpenSink(root, p, pc.m.Hash, pc.m.Resume, &pc.c.srv.locks)
	if err != nil {
		return nil, err
	}
	if sink.Offset() > pc.m.Size {
		if err := sink.Truncate(0); err != nil {
			sink.Discard()
			return nil, err
		}
	}
	t := &putTarget{path: p, sink: sink, w: sink}
	if q := pc.quota(); q != nil {
		// A resumed put is charged only for its new bytes: the kept ones
		// are on disk and counted already.
		acct := pc.c.account()
		if t.qc, err = q.reserve(int64(acct.user.Quota), int64(pc.m.Size-sink.Offset()), acct.user.Name, xfer.Display(p)); err != nil {
			sink.Discard()
			q.markDirty()
			return nil, err
		}
		t.w = &quotaWriter{w: sink, c: t.qc}
	}
	return t, nil
}

// receive writes the data into the partial copy and waits for the
// client's done, which must announce the size the open did.
func (pc *putChan) receive(t *putTarget) (frame.DoneMsg, error) {
	left := pc.m.Size - t.sink.Offset()
	if pc.m.Stream {
		left = math.MaxUint64
	}
	if _, err := io.Copy(&sizeGuard{w: t.w, left: left, shown: xfer.Display(t.path)}, pc.in); err != nil {
		return frame.DoneMsg{}, err
	}
	var d frame.DoneMsg
	select {
	case d = <-pc.done:
	case <-pc.ctx.Done():
		return d, context.Cause(pc.ctx)
	}
	if d.Size != pc.m.Size && !pc.m.Stream {
		return d, xfer.Errorf(frame.CodeIntegrity, "%s: done announces %d bytes, open announced %d; the copy was discarded", xfer.Display(t.path), d.Size, pc.m.Size)
	}
	return d, nil
}

// commit verifies the copy against the client's hash and renames it into
// place with the file's mode and time. It belongs to the account whose
// identity the file system works with.
func (pc *putChan) commit(root xfer.FS, t *putTarget, d frame.DoneMsg) error {
	mode := fs.FileMode(pc.m.Mode & 0o777)
	if pc.m.Mode == 0 {
		mode = 0o644
	}
	var mtime time.Time
	if pc.m.MtimeNS != 0 {
		mtime = time.Unix(0, pc.m.MtimeNS)
	}
	replaced := regularSize(root, t.path)
	if err := t.sink.Commit(d.Size, d.Hash, mode, mtime); err != nil {
		if t.qc != nil {
			t.qc.end(0)
			pc.quota().markDirty() // Commit discarded the copy on a mismatch
		}
		return err
	}
	t.qc.end(-replaced)
	return nil
}

// permit checks the account may make a request: reading (list, checksum)
// needs get, changing (mkdir, remove, rename, setattr, symlink) needs put;
// stat and chdir need either, as the channel itself does.
func (fc *fsChan) permit(op string) error {
	acct := fc.c.account()
	perm := ""
	switch op {
	case frame.OpList, frame.OpChecksum:
		perm = PermGet
	case frame.OpMkdir, frame.OpRemove, frame.OpRename, frame.OpSetattr, frame.OpSymlink:
		perm = PermPut
	}
	if perm == "" || acct.can(perm) {
		return nil
	}
	what := map[string]string{PermGet: "read files", PermPut: "write files"}[perm]
	return xfer.Errorf(frame.CodeNotPermitted, "%s: %v", op, acct.denied(perm, what))
}

// maxPendingRequests bounds the requests a client may have outstanding on
// one fs channel.
const maxPendingRequests = 64

// fsChan is a file session: requests answered in order, relative to a
// current directory that belongs to the channel alone.
type fsChan struct {
	fileBase
	reqs chan *frame.FileRequest
	cwd  string
}

// request takes a client's request, which run answers in order.
func (fc *fsChan) request(_ *mux.Channel, m *frame.FileRequest) error {
	select {
	case fc.reqs <- m:
		return nil
	default:
		return mux.Violationf(frame.CodeFlowControl, "more than %d requests outstanding on channel %d", maxPendingRequests, fc.id)
	}
}

func (fc *fsChan) run() {
	root, err := fc.openRoot()
	if err != nil {
		fc.fail(err)
		return
	}
	defer root.Close()
	fc.cwd = fc.c.account().startDir()
	if fc.m.Dir != "" {
		d, err := fc.resolve(fc.cwd, fc.m.Dir)
		if err == nil {
			err = checkDir(root, d)
		}
		if err != nil {
			fc.m.Path = fc.m.Dir
			fc.fail(err)
			return
		}
		fc.cwd = d
	}
	if !fc.accept(&frame.OpenOKMsg{Window: 1, Cwd: fc.c.account().showDir(fc.cwd)}) {
		return
	}
	for {
		select {
		case <-fc.ctx.Done():
			return
		case req := <-fc.reqs:
			if err := fc.serve(root, req); err != nil {
				return // the connection failed
			}
		}
	}
}

func checkDir(root xfer.FS, p string) error {
	fi, err := root.Stat(p)
	if err != nil {
		return xfer.ErrorFor(p, err)
	}
	if !fi.IsDir() {
		return xfer.Errorf(frame.CodeNotDir, "%s: not a directory", xfer.Display(p))
	}
	return nil
}

// serve answers one request; only a failure to send is returned.
func (fc *fsChan) serve(root xfer.FS, req *frame.FileRequest) error {
	reply := &frame.FileReply{ID: req.ID}
	p, err := fc.resolve(fc.cwd, req.Path)
	if err == nil {
		err = fc.permit(req.Op)
	}
	if err == nil {
		err = fc.do(root, req, p, reply)
	}
	switch req.Op {
	case frame.OpRemove, frame.OpRename:
		if q := fc.quota(); q != nil {
			q.markDirty()
		}
	}
	switch req.Op {
	case frame.OpStat, frame.OpLstat, frame.OpChdir:
	case frame.OpRename:
		to, _ := fc.resolve(fc.cwd, req.To)
		fc.audit(req.Op, p, to, nil, "", err)
	case frame.OpChecksum:
		var size *uint64
		if reply.Info != nil {
			size = &reply.Info.Size
		}
		fc.audit(req.Op, p, "", size, reply.Hash, err)
	default:
		fc.audit(req.Op, p, "", nil, "", err)
	}
	if err != nil {
		em := xfer.ErrorFor(p, err)
		fc.c.log.Debug("file request failed", "channel", fc.id, "op", req.Op, "path", req.Path, "code", em.Code, "err", em.Message)
		reply = &frame.FileReply{ID: req.ID, Error: em}
	} else if req.Op != frame.OpList && req.Op != frame.OpStat && req.Op != frame.OpLstat && req.Op != frame.OpChdir {
		fc.c.log.Info("file request", "channel", fc.id, "op", req.Op, "path", p, "to", req.To)
	}
	if req.Op == frame.OpList && reply.Error == nil {
		return fc.sendList(req.ID, reply.Entries)
	}
	return fc.send(reply)
}

// send sends a reply, or, when it would not fit the peer's payload limit,
// an error reply that says so (or, for an error naming a long path, a
// shortened one): the channel goes on either way.
func (fc *fsChan) send(r *frame.FileReply) error {
	p, err := frame.Marshal(r)
	if err == nil && fc.ch.Fits(len(p)) {
		return fc.ch.Send(frame.Reply, p)
	}
	var em frame.ErrorMsg
	switch {
	case err != nil:
		em = *xfer.ErrorFor("", err)
	case r.Error != nil:
		em = *r.Error
	default:
		em = frame.ErrorMsg{Code: frame.CodeTooLarge, Message: fmt.Sprintf("the reply (%d bytes) exceeds this client's payload limit of %d bytes", len(p), fc.ch.PeerMax())}
	}
	if len(em.Message) > 512 {
		em.Message = strings.ToValidUTF8(em.Message[:512], "") + "..."
	}
	if p, err = frame.Marshal(&frame.FileReply{ID: r.ID, Error: &em}); err != nil {
		return err
	}
	return fc.ch.Send(frame.Reply, p)
}

// do does one request of the file shell on p (resolved), as fsOps says.
func (fc *fsChan) do(root xfer.FS, req *frame.FileRequest, p string, reply *frame.FileReply) error {
	op, ok := fsOps[req.Op]
	if !ok {
		return xfer.Errorf(frame.CodeNotSupported, "operation %q not supported", req.Op)
	}
	return op(fc, root, req, p, reply)
}

// fsOp does one operation of the file shell on p (resolved), filling reply.
type fsOp func(fc *fsChan, root xfer.FS, req *frame.FileRequest, p string, reply *frame.FileReply) error

// fsOps is every operation of an fs channel.
var fsOps = map[string]fsOp{
	frame.OpStat: func(_ *fsChan, root xfer.FS, _ *frame.FileRequest, p string, reply *frame.FileReply) error {
		fi, err := root.Stat(p)
		if err != nil {
			return err
		}
		info := xfer.Info(path.Base(p), fi, "")
		reply.Info = &info
		return nil
	},
	frame.OpLstat: func(_ *fsChan, root xfer.FS, _ *frame.FileRequest, p string, reply *frame.FileReply) error {
		info, err := lstatInfo(root, p)
		if err != nil {
			return err
		}
		reply.Info = &info
		return nil
	},
	frame.OpList: func(fc *fsChan, root xfer.FS, _ *frame.FileRequest, p string, reply *frame.FileReply) error {
		return fc.list(root, p, reply)
	},
	frame.OpMkdir: func(_ *fsChan, root xfer.FS, req *frame.FileRequest, p string, _ *frame.FileReply) error {
		perm := fs.FileMode(req.Mode & 0o777)
		if !req.HasMode {
			perm = 0o755
		}
		if req.Parents {
			return root.MkdirAll(p, perm)
		}
		return root.Mkdir(p, perm)
	},
	frame.OpRemove:   (*fsChan).remove,
	frame.OpRename:   (*fsChan).rename,
	frame.OpChecksum: (*fsChan).checksum,
	frame.OpChdir: func(fc *fsChan, root xfer.FS, _ *frame.FileRequest, p string, reply *frame.FileReply) error {
		if err := checkDir(root, p); err != nil {
			return err
		}
		fc.cwd = p
		reply.Cwd = fc.c.account().showDir(p)
		return nil
	},
	frame.OpSetattr: func(_ *fsChan, root xfer.FS, req *frame.FileRequest, p string, _ *frame.FileReply) error {
		if req.HasMode {
			if err := root.Chmod(p, fs.FileMode(req.Mode&0o777)); err != nil {
				return err
			}
		}
		if req.MtimeNS != 0 {
			t := time.Unix(0, req.MtimeNS)
			return root.Chtimes(p, t, t)
		}
		return nil
	},
	frame.OpSymlink: func(fc *fsChan, root xfer.FS, req *frame.FileRequest, p string, _ *frame.FileReply) error {
		if fc.c.account().confined && !xfer.SafeLinkIn(root, p, req.Target) {
			return xfer.Errorf(frame.CodePathEscape, "%s -> %s: a link may only point inside the served directory, by a relative path", xfer.Display(p), req.Target)
		}
		return root.Symlink(req.Target, p)
	},
}

// remove removes p (a tree with Recursive), never the served directory
// or the root.
func (fc *fsChan) remove(root xfer.FS, req *frame.FileRequest, p string, _ *frame.FileReply) error {
	if p == "." {
		return xfer.Errorf(frame.CodePermission, "~: refusing to remove the served directory itself")
	}
	if p == "/" {
		return xfer.Errorf(frame.CodePermission, "/: refusing to remove the root directory (as rm's --preserve-root)")
	}
	if req.Recursive {
		if _, err := root.Lstat(p); err != nil {
			return err // RemoveAll reports no error for a missing path
		}
		return root.RemoveAll(p)
	}
	return root.Remove(p)
}

// rename renames p to req.To, never the served directory itself.
func (fc *fsChan) rename(root xfer.FS, req *frame.FileRequest, p string, _ *frame.FileReply) error {
	to, err := fc.resolve(fc.cwd, req.To)
	if err != nil {
		return err
	}
	if p == "." || to == "." {
		return xfer.Errorf(frame.CodePermission, "~: refusing to rename the served directory itself")
	}
	if err := root.Rename(p, to); err != nil {
		return xfer.ErrorFor(p+" -> "+to, err)
	}
	return nil
}

// checksum hashes the regular file p with the request's hash.
func (fc *fsChan) checksum(root xfer.FS, req *frame.FileRequest, p string, reply *frame.FileReply) error {
	f, fi, err := fc.c.account().openRead(root, p)
	if err != nil {
		return err
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		return xfer.Errorf(frame.CodeIsDir, "%s: not a regular file", xfer.Display(p))
	}
	h, _, err := xfer.NewHash(req.HashName)
	if err != nil {
		return err
	}
	if _, err := io.Copy(h, xfer.CtxReader{Ctx: fc.ctx, R: f}); err != nil {
		return err
	}
	info := xfer.Info(path.Base(p), fi, "")
	reply.Info, reply.Hash = &info, hex.EncodeToString(h.Sum(nil))
	return nil
}

func lstatInfo(root xfer.FS, p string) (frame.FileInfo, error) {
	fi, err := root.Lstat(p)
	if err != nil {
		return frame.FileInfo{}, err
	}
	var target string
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ = root.Readlink(p) // best effort: shown, never followed
	}
	return xfer.Info(path.Base(p), fi, target), nil
}

// list reads the directory p, sorted by name, entries described without
// following symlinks.
func (fc *fsChan) list(root xfer.FS, p string, reply *frame.FileReply) error {
	d, fi, err := xfer.OpenRead(root, p)
	if err != nil {
		return err
	}
	defer d.Close()
	if !fi.IsDir() {
		info, err := lstatInfo(root, p)
		if err != nil {
			return err
		}
		reply.Entries = []frame.FileInfo{info}
		return nil
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	slices.Sort(names)
	reply.Entries = make([]frame.FileInfo, 0, len(names))
	for _, name := range names {
		info, err := lstatInfo(root, path.Join(p, name))
		if err != nil {
			continue // removed while listing
		}
		info.Name = name
		reply.Entries = append(reply.Entries, info)
	}
	return nil
}

// sendList sends a listing in replies that fit the peer's payload limit;
// an entry that cannot fit alone ends the listing with an error reply.
func (fc *fsChan) sendList(id uint32, entries []frame.FileInfo) error {
	budget := int(fc.ch.PeerMax()) / 2
	for {
		n, size := 0, 64
		for n < len(entries) && n < frame.MaxEntries {
			e := &entries[n]
			size += 2*(len(e.Name)+len(e.Target)) + 128 // JSON may escape; generous
			if size > budget && n > 0 {
				break
			}
			n++
		}
		for {
			r := &frame.FileReply{ID: id, Entries: entries[:n], More: n < len(entries)}
			p, err := frame.Marshal(r)
			if err != nil {
				return err
			}
			if fc.ch.Fits(len(p)) {
				if err := fc.ch.Send(frame.Reply, p); err != nil {
					return err
				}
				break
			}
			if n == 1 {
				return fc.send(&frame.FileReply{ID: id, Error: &frame.ErrorMsg{Code: frame.CodeTooLarge,
					Message: fmt.Sprintf("the entry %s does not fit this client's payload limit of %d bytes", xfer.Display(entries[0].Name), fc.ch.PeerMax())}})
			}
			n /= 2
		}
		entries = entries[n:]
		if len(entries) == 0 {
			return nil
		}
	}
}
