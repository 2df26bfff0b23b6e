package execd

import (
	"cmp"
	"errors"
	"io"
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
	stop   error // the writer gives up with it (stopFull); readers are not told
}

func newSpool(max int64) *spool {
	sp := &spool{max: max}
	sp.cond = sync.NewCond(&sp.mu)
	return sp
}

// ReadFrom reads r into the spool until io.EOF (nil) or an error, waiting
// while the spool is full. Bytes are read straight into the spool's free
// space; readers see them once the read returns.
func (sp *spool) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		sp.mu.Lock()
		for sp.end-sp.base >= sp.max && sp.err == nil && sp.stop == nil {
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

// stopFull makes a writer waiting on a full spool give up with err,
// keeping what the spool holds; it reports whether the spool was full.
func (sp *spool) stopFull(err error) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	full := sp.end-sp.base >= sp.max
	if full && sp.stop == nil {
		sp.stop = err
		sp.cond.Broadcast()
	}
	return full
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
	defer sp.mu.Unlock()
	for {
		select {
		case <-r.stop:
			return 0, errStopped
		default:
		}
		if r.off < sp.base {
			return 0, errTrimmed
		}
		if r.off < sp.end {
			break
		}
		if sp.eof {
			return 0, io.EOF
		}
		if sp.err != nil {
			return 0, sp.err
		}
		sp.cond.Wait()
	}
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
