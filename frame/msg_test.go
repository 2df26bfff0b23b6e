package frame_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/frame"
)

func TestUnmarshalTable(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		msg     frame.Message
		wantErr error
	}{
		{"open argv", `{"kind":"exec","argv":["ls","-l"],"window":65536}`, &frame.OpenMsg{}, nil},
		{"open shell", `{"kind":"exec","shell":"ls | wc -l","window":1}`, &frame.OpenMsg{}, nil},
		{"open both", `{"kind":"exec","argv":["ls"],"shell":"ls","window":1}`, &frame.OpenMsg{}, frame.ErrInvalid},
		{"open neither", `{"kind":"exec","window":1}`, &frame.OpenMsg{}, frame.ErrInvalid},
		{"open no window", `{"kind":"exec","argv":["ls"]}`, &frame.OpenMsg{}, frame.ErrInvalid},
		{"open bad kind", `{"kind":"shell","argv":["ls"],"window":1}`, &frame.OpenMsg{}, frame.ErrInvalid},
		{"open NUL arg", `{"kind":"exec","argv":["ls","a\u0000b"],"window":1}`, &frame.OpenMsg{}, frame.ErrInvalid},
		{"open bad env", `{"kind":"exec","argv":["ls"],"env":["NOEQUALS"],"window":1}`, &frame.OpenMsg{}, frame.ErrInvalid},
		{"open neg timeout", `{"kind":"exec","argv":["ls"],"timeout_ms":-1,"window":1}`, &frame.OpenMsg{}, frame.ErrInvalid},
		{"open unknown field ignored", `{"kind":"exec","argv":["ls"],"window":1,"future":true}`, &frame.OpenMsg{}, nil},
		{"not an object", `["kind"]`, &frame.OpenMsg{}, frame.ErrMalformed},
		{"empty", ``, &frame.OpenMsg{}, frame.ErrMalformed},
		{"truncated json", `{"kind":"exec"`, &frame.OpenMsg{}, frame.ErrMalformed},
		{"trailing data", `{"code":0,"duration_ms":1} {}`, &frame.ExitMsg{}, frame.ErrMalformed},
		{"wrong field type", `{"code":"zero"}`, &frame.ExitMsg{}, frame.ErrMalformed},
		{"exit ok", `{"code":255,"duration_ms":1}`, &frame.ExitMsg{}, nil},
		{"exit code of Windows", `{"code":9009,"duration_ms":1}`, &frame.ExitMsg{}, nil},
		{"exit code of 32 bits", `{"code":4294967295,"duration_ms":1}`, &frame.ExitMsg{}, nil},
		{"exit code too big", `{"code":4294967296,"duration_ms":1}`, &frame.ExitMsg{}, frame.ErrInvalid},
		{"exit code negative", `{"code":-2,"duration_ms":1}`, &frame.ExitMsg{}, frame.ErrInvalid},
		{"exec encoding", `{"kind":"exec","argv":["x"],"window":1,"encoding":"gbk"}`, &frame.OpenMsg{}, nil},
		{"exec unknown encoding", `{"kind":"exec","argv":["x"],"window":1,"encoding":"ebcdic"}`, &frame.OpenMsg{}, frame.ErrInvalid},
		{"exit signal", `{"code":-1,"signal":"KILL","duration_ms":1}`, &frame.ExitMsg{}, nil},
		{"exit signal with code", `{"code":3,"signal":"KILL","duration_ms":1}`, &frame.ExitMsg{}, frame.ErrInvalid},
		{"window ok", `{"stream":"stdin","credit":10}`, &frame.WindowMsg{}, nil},
		{"window zero", `{"stream":"stdin","credit":0}`, &frame.WindowMsg{}, frame.ErrInvalid},
		{"window on exit", `{"stream":"exit","credit":1}`, &frame.WindowMsg{}, frame.ErrInvalid},
		{"window unknown stream", `{"stream":"stdfoo","credit":1}`, &frame.WindowMsg{}, frame.ErrMalformed},
		{"signal ok", `{"signal":"TERM"}`, &frame.SignalMsg{}, nil},
		{"signal unknown", `{"signal":"SEGV"}`, &frame.SignalMsg{}, frame.ErrInvalid},
		{"resize zero", `{"cols":0,"rows":24}`, &frame.ResizeMsg{}, frame.ErrInvalid},
		{"resize overflow", `{"cols":70000,"rows":24}`, &frame.ResizeMsg{}, frame.ErrMalformed},
		{"hello ok", `{"software":"x","max_payload":65536}`, &frame.HelloMsg{}, nil},
		{"hello tiny max", `{"software":"x","max_payload":10}`, &frame.HelloMsg{}, frame.ErrInvalid},
		{"error ok", `{"code":"no_such_channel","message":"channel 9 is not open"}`, &frame.ErrorMsg{}, nil},
		{"error no code", `{"message":"x"}`, &frame.ErrorMsg{}, frame.ErrInvalid},
		{"open_ok ok", `{"window":1024,"pid":7}`, &frame.OpenOKMsg{}, nil},
		{"goaway ok", `{"reason":"bye"}`, &frame.GoAwayMsg{}, nil},
		{"keys in capitals", `{"KIND":"exec","ARGV":["id"],"WINDOW":1}`, &frame.OpenMsg{}, frame.ErrMalformed},
		{"one key in another case", `{"kind":"exec","Argv":["id"],"window":1}`, &frame.OpenMsg{}, frame.ErrMalformed},
		{"duplicate key", `{"kind":"exec","argv":["true"],"argv":["rm","-rf","x"],"window":1}`, &frame.OpenMsg{}, frame.ErrMalformed},
		{"duplicate key nested", `{"kind":"exec","argv":["x"],"window":1,"pty":{"term":"a","term":"b","cols":1,"rows":1}}`, &frame.OpenMsg{}, frame.ErrMalformed},
		{"case nested", `{"id":1,"entries":[{"NAME":"a","type":"file"}]}`, &frame.FileReply{}, frame.ErrMalformed},
		{"duplicate in a list's object", `{"id":1,"entries":[{"name":"a","name":"b","type":"file"}]}`, &frame.FileReply{}, frame.ErrMalformed},
		{"same key in two objects", `{"kind":"exec","argv":["x"],"window":1,"pty":{"term":"a","cols":1,"rows":1}}`, &frame.OpenMsg{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := frame.Unmarshal([]byte(tc.payload), tc.msg)
			if tc.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}

func TestTypeText(t *testing.T) {
	b, err := frame.Stdout.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, "stdout", string(b))
	var typ frame.Type
	require.NoError(t, typ.UnmarshalText([]byte("stderr")))
	assert.Equal(t, frame.Stderr, typ)
	assert.Equal(t, "type(0x7f)", frame.Type(0x7f).String())
	_, err = frame.Type(0x7f).MarshalText()
	require.ErrorIs(t, err, frame.ErrUnknownType)
}

func TestAttachValidate(t *testing.T) {
	for _, tc := range []struct {
		m  frame.OpenMsg
		ok bool
	}{
		{frame.OpenMsg{Kind: frame.KindAttach, Window: 1, Attach: &frame.AttachRequest{Job: "1ec2e26aabe52dcc", Stdout: 1 << 40}}, true},
		{frame.OpenMsg{Kind: frame.KindAttach, Window: 1}, false},
		{frame.OpenMsg{Kind: frame.KindAttach, Window: 1, Attach: &frame.AttachRequest{}}, false},
		{frame.OpenMsg{Kind: frame.KindAttach, Window: 1, Attach: &frame.AttachRequest{Job: "../x"}}, false},
		{frame.OpenMsg{Kind: frame.KindAttach, Window: 1, Attach: &frame.AttachRequest{Job: strings.Repeat("a", frame.MaxJobIDLen+1)}}, false},
	} {
		err := tc.m.Validate()
		if tc.ok {
			assert.NoError(t, err, "%+v", tc.m.Attach)
		} else {
			assert.ErrorIs(t, err, frame.ErrInvalid, "%+v", tc.m.Attach)
		}
	}
	assert.Error(t, (&frame.OpenOKMsg{Window: 1, Job: "a b"}).Validate())
}
