package pionlog

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestZerologOnlyWarningsAndErrorsAtDebug(t *testing.T) {
	var buf bytes.Buffer
	l := Zerolog(zerolog.New(&buf).Level(zerolog.DebugLevel)).NewLogger("ice")
	l.Info("not this")
	l.Debugf("nor %s", "this")
	l.Warnf("a %s", "warning")
	l.Error("an error")
	out := buf.String()
	if strings.Contains(out, "not this") || strings.Contains(out, "nor this") {
		t.Fatalf("pion's info/debug reached the log: %s", out)
	}
	for _, want := range []string{`"message":"a warning"`, `"message":"an error"`, `"component":"pion/ice"`,
		`"pion_level":"warn"`, `"pion_level":"error"`, `"level":"debug"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	buf.Reset()
	quietAtInfo := Zerolog(zerolog.New(&buf).Level(zerolog.InfoLevel)).NewLogger("ice")
	quietAtInfo.Errorf("per-packet %d", 1)
	Discard.NewLogger("x").Error("dropped")
	if buf.Len() != 0 {
		t.Fatalf("logged at info level: %s", buf.String())
	}
}
