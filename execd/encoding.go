package execd

import (
	"io"

	"github.com/execd-project/execd/internal/transcode"
)

// outputEncoding decides how a command's output is transcoded to UTF-8:
// the client's choice, else the daemon's --encoding, else (auto) the code
// page the command will write in.
func (s *Server) outputEncoding(requested string, pty bool) (string, error) {
	name := transcode.Normalize(requested)
	if name == transcode.Auto {
		name = transcode.Normalize(s.Encoding)
	}
	if name == transcode.Auto {
		return autoEncoding(pty), nil
	}
	if err := transcode.Check(name); err != nil {
		return "", err
	}
	return name, nil
}

// decodeOutput wraps a command's output so that it reads as UTF-8.
func decodeOutput(r io.ReadCloser, encoding string) io.ReadCloser {
	d, err := transcode.Decoder(r, encoding)
	if err != nil || d == io.Reader(r) {
		return r
	}
	return struct {
		io.Reader
		io.Closer
	}{d, r}
}

// encodeInput wraps what the client sends to a command's stdin so that the
// command reads its own code page.
func encodeInput(r io.Reader, encoding string) io.Reader {
	e, err := transcode.Encoder(r, encoding)
	if err != nil {
		return r
	}
	return e
}
