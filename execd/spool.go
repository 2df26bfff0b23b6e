package execd

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// spoolChunk is the size of the buffers a spool keeps its bytes in.
const spoolChunk = 128 << 10

// chunkPool recycles the spools' chunks: a stream of a GiB goes through
// the same few.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, spoolChunk); return &b }}

// errTrimmed is a read before what a spool still keeps.
var errTrimmed = errors.New("execd: output before this offset is no longer kept")

// spool keeps one output stream of a command, addressed by byte offset
// from its start: the bytes from base (the first the client has not
// acknowledged) to end (what the command has written so far). The
// command's pump writes at the end; a reader (the channel the client is
// attached by, one at a time) reads from any offset in between and waits
// for more; the client's acknowledgements trim the front. At most max
// bytes are kept: a full spool stops taking the command's output until
// the client acknowledges some, so the command waits, as it would on a
// slow terminal, and nothing is lost.
type spool struct {
	mu     sync.Mutex
	cond   *sync.Cond
	chunks [][]byte // kept bytes from base; each of capacity spoolChunk
	base   int64
	end    int64
	max    int64
	eof    bool  // the command's stream ended: reads end at end with io.EOF
	err    error // the spool was abandoned: writers fail with it
	stop   error // the writer gives up with it (stopWaiting); readers are not told
	noWait error // set: a writer that would wait for room gives up with it instead
	// stopStarved: the writer gave up waiting for its user's budget, not
	// for the spool's own bound.
	stopStarved bool

	// A detached job's spool keeps its bytes in a file (from offset 0;
	// chunks unused), within its user's budget of disk.
	file    *os.File
	budget  *diskBudget
	starved bool  // the writer waits for the budget
	werr    error // writing the file failed: the output after end is lost
}

func newSpool(max int64) *spool {
	sp := &spool{max: max}
	sp.cond = sync.NewCond(&sp.mu)
	return sp
}

// newFileSpool keeps a stream in f, which holds size bytes of it already
// (a job restored after a restart), at most max, drawing on budget.
func newFileSpool(f *os.File, size, max int64, budget *diskBudget) *spool {
	sp := newSpool(max)
	sp.file, sp.end, sp.budget = f, size, budget
	return sp
}

// ReadFrom reads r into the spool until io.EOF (nil) or an error, waiting
// while the spool is full. Bytes are read straight into the spool's free
// space; readers see them once the read returns.
func (sp *spool) ReadFrom(r io.Reader) (int64, error) {
	if sp.file != nil {
		return sp.readIntoFile(r)
	}
	var total int64
	for {
		sp.mu.Lock()
		for sp.end-sp.base >= sp.max && sp.err == nil && sp.stop == nil {
			if sp.noWait != nil {
				sp.stop = sp.noWait
				break
			}
			sp.cond.Wait()
		}
		if err := cmp.Or(sp.err, sp.stop); err != nil {
			sp.mu.Unlock()
			return total, err
		}
		var tail []byte
		if k := len(sp.chunks); k > 0 && len(sp.chunks[k-1]) < spoolChunk {
			tail = sp.chunks[k-1]
		} else {
			tail = (*chunkPool.Get().(*[]byte))[:0]
			sp.chunks = append(sp.chunks, tail)
		}
		room := min(int64(spoolChunk-len(tail)), sp.max-(sp.end-sp.base))
		sp.mu.Unlock()
		// Only this goroutine writes past a chunk's length; readers copy
		// below end, so reading into the free space races with nobody.
		n, err := r.Read(tail[len(tail) : len(tail)+int(room)])
		if n > 0 {
			sp.mu.Lock()
			if sp.err != nil {
				// Abandoned during the read (its chunks dropped): nobody
				// will read these bytes.
				err := sp.err
				sp.mu.Unlock()
				return total, err
			}
			k := len(sp.chunks) - 1
			sp.chunks[k] = sp.chunks[k][:len(sp.chunks[k])+n]
			sp.end += int64(n)
			total += int64(n)
			sp.cond.Broadcast()
			sp.mu.Unlock()
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// readIntoFile is ReadFrom for a spool kept in a file: what a read gave
// is written at the end of the file as the user's budget grants it (never
// granted ahead of a read, which may wait for ever).
func (sp *spool) readIntoFile(r io.Reader) (int64, error) {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := (*bp)[:spoolChunk]
	var total int64
	for {
		sp.mu.Lock()
		room := int64(0)
		for {
			if err := cmp.Or(sp.err, sp.stop); err != nil {
				sp.mu.Unlock()
				return total, err
			}
			if room = min(spoolChunk, sp.max-(sp.end-sp.base)); room > 0 {
				break
			}
			if sp.noWait != nil {
				sp.stop = sp.noWait
				continue
			}
			sp.cond.Wait()
		}
		sp.mu.Unlock()
		n, err := r.Read(buf[:room])
		if werr := sp.appendFile(buf[:n]); werr != nil {
			return total, werr
		}
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// appendFile writes p at the end of a file spool, as the budget grants,
// waiting for it when it is exhausted.
func (sp *spool) appendFile(p []byte) error {
	for len(p) > 0 {
		sp.mu.Lock()
		var grant int64
		for {
			if err := cmp.Or(sp.err, sp.stop); err != nil {
				sp.budget.unwait(sp)
				sp.starved = false
				sp.mu.Unlock()
				return err
			}
			if grant = sp.budget.take(int64(len(p)), sp); grant > 0 {
				sp.starved = false
				break
			}
			if sp.noWait != nil {
				sp.stop, sp.stopStarved = sp.noWait, true
				continue
			}
			sp.starved = true
			sp.cond.Wait()
		}
		end := sp.end
		sp.mu.Unlock()
		if _, err := sp.file.WriteAt(p[:grant], end); err != nil {
			sp.budget.give(grant)
			sp.mu.Lock()
			sp.werr = fmt.Errorf("its output could not be kept from byte %d on: %w", end, err)
			sp.mu.Unlock()
			return fmt.Errorf("%w: %w", errSpoolFull, err)
		}
		sp.mu.Lock()
		sp.end += grant
		sp.cond.Broadcast()
		sp.mu.Unlock()
		p = p[grant:]
	}
	return nil
}

// full reports whether the writer waits for room: the spool's bound or
// its user's budget.
func (sp *spool) full() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.fullLocked()
}

func (sp *spool) fullLocked() bool {
	return !sp.eof && (sp.end-sp.base >= sp.max || sp.starved)
}

// writeErrOrNil is why a file spool's output stopped being kept, or nil
// (a nil spool too).
func (sp *spool) writeErrOrNil() error {
	if sp == nil {
		return nil
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.werr
}

// diskBudget bounds the bytes one user's detached jobs keep on disk; a
// spool that finds it exhausted waits until a job is removed.
type diskBudget struct {
	mu      sync.Mutex
	used    int64
	max     int64
	waiting map[*spool]struct{}
}

// take grants up to n bytes, or 0 and sp waits for a give. A nil budget
// grants everything.
func (b *diskBudget) take(n int64, sp *spool) int64 {
	if b == nil {
		return n
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n = max(min(n, b.max-b.used), 0)
	b.used += n
	if n == 0 {
		if b.waiting == nil {
			b.waiting = map[*spool]struct{}{}
		}
		b.waiting[sp] = struct{}{}
	} else {
		delete(b.waiting, sp)
	}
	return n
}

// charge counts bytes already on disk (a restored job's), over the bound
// if need be.
func (b *diskBudget) charge(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// give returns n bytes and wakes the spools waiting for some.
func (b *diskBudget) give(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	waiting := make([]*spool, 0, len(b.waiting))
	for sp := range b.waiting {
		waiting = append(waiting, sp)
	}
	b.mu.Unlock()
	for _, sp := range waiting {
		sp.wake() // never under b.mu: a spool takes its lock, then b.mu
	}
}

func (b *diskBudget) unwait(sp *spool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	delete(b.waiting, sp)
	b.mu.Unlock()
}

// closeWrite ends the stream: readers get io.EOF at its end.
func (sp *spool) closeWrite() {
	sp.mu.Lock()
	sp.eof = true
	sp.cond.Broadcast()
	sp.mu.Unlock()
}

// abandon makes writers fail with err: nobody will read what they write.
func (sp *spool) abandon(err error) {
	sp.mu.Lock()
	if sp.err == nil {
		sp.err = err
	}
	sp.chunks = nil
	sp.base = sp.end
	sp.cond.Broadcast()
	sp.mu.Unlock()
}

// stopWaiting makes the writer give up with err whenever it waits for
// room, now or later, keeping what the spool holds: nobody will make room
// for a detached job whose command has exited, and its writer may not
// have met the bound yet (the last of the output still in the pipe).
func (sp *spool) stopWaiting(err error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.noWait = err
	if sp.fullLocked() && sp.stop == nil {
		sp.stop, sp.stopStarved = err, sp.starved
	}
	sp.cond.Broadcast()
}

// gaveUp reports whether the writer gave up for want of room, and
// whether that was its user's disk budget rather than its own bound.
func (sp *spool) gaveUp() (gaveUp, starved bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.stop != nil, sp.stopStarved
}

// ack drops what is before off: the client has it. Whole chunks only.
func (sp *spool) ack(off int64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.ackLocked(off)
}

func (sp *spool) ackLocked(off int64) {
	off = min(off, sp.end)
	freed := false
	for len(sp.chunks) > 0 {
		c := sp.chunks[0]
		if sp.base+int64(len(c)) > off || (len(sp.chunks) == 1 && len(c) < spoolChunk) {
			break // the last chunk may still be filled by the writer
		}
		sp.chunks[0] = nil
		sp.chunks = sp.chunks[1:]
		sp.base += int64(len(c))
		freed = true
		// Nobody holds it: readers copy under the lock, and the writer
		// fills only the last chunk, which is not full.
		chunkPool.Put(&c)
	}
	if freed {
		sp.cond.Broadcast()
	}
}

// compact keeps what a finished stream still holds in a buffer of its
// size, when it fits in one chunk (a command's output is most often
// small, and a chunk is 128 KiB).
func (sp *spool) compact() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if !sp.eof || sp.end-sp.base > spoolChunk || len(sp.chunks) == 0 {
		return
	}
	kept := make([]byte, 0, sp.end-sp.base)
	for _, c := range sp.chunks {
		kept = append(kept, c...)
	}
	sp.chunks = [][]byte{kept}
}

// bounds returns what the spool keeps, [base, end), and whether the stream ended.
func (sp *spool) bounds() (base, end int64, eof bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.base, sp.end, sp.eof
}

// wake makes waiting readers look at their stop condition again.
func (sp *spool) wake() {
	sp.mu.Lock()
	sp.cond.Broadcast()
	sp.mu.Unlock()
}

// spoolReader reads a spool from an offset, waiting for more at its end,
// until the stream ends (io.EOF) or stop is closed (errStopped; call the
// spool's wake after closing it).
type spoolReader struct {
	sp   *spool
	off  int64
	stop <-chan struct{}
	// drop trims what has been read at once: for a command nobody will
	// resume, reading is as good as an acknowledgement.
	drop bool
}

var errStopped = errors.New("execd: reader stopped")

func (r *spoolReader) Read(p []byte) (int, error) {
	sp := r.sp
	sp.mu.Lock()
	if err := r.await(); err != nil {
		sp.mu.Unlock()
		return 0, err
	}
	if sp.file != nil {
		// What is below end is written for good: read it unlocked.
		n, off := int(min(int64(len(p)), sp.end-r.off)), r.off
		sp.mu.Unlock()
		n, err := sp.file.ReadAt(p[:n], off)
		r.off += int64(n)
		if err == io.EOF && n > 0 {
			err = nil
		}
		return n, err
	}
	defer sp.mu.Unlock()
	// Find the chunk holding off (chunks are full but the last), and copy
	// on across chunks: a frame as large as p.
	i := int((r.off - sp.base) / spoolChunk)
	at := int((r.off - sp.base) % spoolChunk)
	n := 0
	for ; i < len(sp.chunks) && n < len(p); i, at = i+1, 0 {
		n += copy(p[n:], sp.chunks[i][at:])
	}
	r.off += int64(n)
	if r.drop {
		sp.ackLocked(r.off)
	}
	return n, nil
}

// await waits, under the spool's lock, until there is something at the
// reader's offset, or returns why there will not be.
func (r *spoolReader) await() error {
	sp := r.sp
	for {
		select {
		case <-r.stop:
			return errStopped
		default:
		}
		if r.off < sp.base {
			return errTrimmed
		}
		if r.off < sp.end {
			return nil
		}
		if sp.eof {
			return io.EOF
		}
		if sp.err != nil {
			return sp.err
		}
		sp.cond.Wait()
	}
}
