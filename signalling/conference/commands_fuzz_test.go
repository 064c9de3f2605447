package conference

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/matrix-gateway/gateway/signalling"
)

// FuzzCommand: any room message, from a member of any power level, gives a
// reply or none, and never panics; ordinary messages are never commands.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{"!conf", "!conf start", "!conf dial +15550100", "!conf kick 1", "!conf mute @a:hs",
		"!CONFERENCE info", "!conf dial \x00", "!conf kick " + strings.Repeat("9", 300), "hello", "!conf stop extra"} {
		f.Add(s, 100)
		f.Add(s, 0)
	}
	r, err := NewRegistry(context.Background(), Config{Log: zerolog.Nop(), DialIn: []string{"+15553330000"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(r.Close)
	f.Fuzz(func(t *testing.T, body string, level int) {
		reply, ok := r.Command(context.Background(), CommandRequest{
			Room: "!fuzz:hs", Sender: signalling.Party{MatrixUser: "@f:hs"}, Body: body, PowerLevel: level, Required: 50, DefaultCC: "1",
		})
		if ok != IsCommand(body) {
			t.Fatalf("Command ok=%v but IsCommand=%v for %q", ok, IsCommand(body), body)
		}
		if ok && reply == "" {
			t.Fatalf("a command got an empty reply: %q", body)
		}
	})
}
