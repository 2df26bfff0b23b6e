package frame_test

import (
	"bytes"
	"encoding/hex"
	"fmt"

	"github.com/execd-project/execd/frame"
)

func Example() {
	var wire bytes.Buffer
	w := frame.NewWriter(&wire, 0)
	_ = w.WriteFrame(frame.Stdout, 0, 1, []byte("hi\n"))
	_ = w.WriteJSON(frame.Exit, 1, &frame.ExitMsg{Code: 0, DurationMS: 3})
	fmt.Println(hex.EncodeToString(wire.Bytes()[:frame.HeaderSize+3]))

	r := frame.NewReader(&wire, 0)
	for {
		f, err := r.ReadFrame()
		if err != nil {
			break
		}
		fmt.Printf("%s ch=%d len=%d %q\n", f.Type, f.Channel, f.Length, f.Payload)
	}
	// Output:
	// 01210000000000010000000368690a
	// stdout ch=1 len=3 "hi\n"
	// exit ch=1 len=26 "{\"code\":0,\"duration_ms\":3}"
}
