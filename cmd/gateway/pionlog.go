package main

import (
	"fmt"

	"github.com/pion/logging"
	"github.com/rs/zerolog"
)

// pionLoggers routes pion's WebRTC logs into the gateway's log at debug
// level, tagged with pion's scope (ice, dtls, pc, ...). pion reports some
// per-packet conditions as errors (a datagram for a connection that just
// closed, a malformed STUN message on the shared port), which must not
// flood an operator's log; what matters (ICE or DTLS failing) surfaces as
// the call's end cause.
type pionLoggers struct{ log zerolog.Logger }

func (p pionLoggers) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: p.log.With().Str("component", "pion/"+scope).Logger()}
}

type pionLogger struct{ log zerolog.Logger }

func (l pionLogger) Trace(string)          {}
func (l pionLogger) Tracef(string, ...any) {}
func (l pionLogger) Debug(string)          {}
func (l pionLogger) Debugf(string, ...any) {}
func (l pionLogger) Info(string)           {}
func (l pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(m string)         { l.log.Debug().Str("pion_level", "warn").Msg(m) }
func (l pionLogger) Warnf(f string, a ...any) {
	if e := l.log.Debug(); e.Enabled() {
		e.Str("pion_level", "warn").Msg(fmt.Sprintf(f, a...))
	}
}
func (l pionLogger) Error(m string) { l.log.Debug().Str("pion_level", "error").Msg(m) }
func (l pionLogger) Errorf(f string, a ...any) {
	if e := l.log.Debug(); e.Enabled() {
		e.Str("pion_level", "error").Msg(fmt.Sprintf(f, a...))
	}
}
