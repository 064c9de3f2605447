// Package pionlog adapts pion's logging to the gateway: Discard for
// components that report through metrics (the TURN server, the media
// library), Zerolog for the gateway's WebRTC peers. pion logs some
// conditions per packet (a datagram for a connection that just closed, a
// malformed STUN message), so nothing it says may reach an operator's log
// above debug level.
package pionlog

import (
	"fmt"

	"github.com/pion/logging"
	"github.com/rs/zerolog"
)

// Discard is a pion LoggerFactory whose loggers drop everything.
var Discard logging.LoggerFactory = discard{}

type discard struct{}

func (discard) NewLogger(string) logging.LeveledLogger { return quiet{} }

type quiet struct{}

func (quiet) Trace(string)          {}
func (quiet) Tracef(string, ...any) {}
func (quiet) Debug(string)          {}
func (quiet) Debugf(string, ...any) {}
func (quiet) Info(string)           {}
func (quiet) Infof(string, ...any)  {}
func (quiet) Warn(string)           {}
func (quiet) Warnf(string, ...any)  {}
func (quiet) Error(string)          {}
func (quiet) Errorf(string, ...any) {}

// Zerolog returns a pion LoggerFactory that writes pion's warnings and
// errors to log at debug level, tagged component=pion/<scope> and
// pion_level; pion's trace, debug and info messages are dropped.
func Zerolog(log zerolog.Logger) logging.LoggerFactory { return zerologFactory{log: log} }

type zerologFactory struct{ log zerolog.Logger }

func (f zerologFactory) NewLogger(scope string) logging.LeveledLogger {
	return zerologLogger{log: f.log.With().Str("component", "pion/"+scope).Logger()}
}

type zerologLogger struct{ log zerolog.Logger }

func (zerologLogger) Trace(string)          {}
func (zerologLogger) Tracef(string, ...any) {}
func (zerologLogger) Debug(string)          {}
func (zerologLogger) Debugf(string, ...any) {}
func (zerologLogger) Info(string)           {}
func (zerologLogger) Infof(string, ...any)  {}

func (l zerologLogger) Warn(m string)             { l.emit("warn", m) }
func (l zerologLogger) Warnf(f string, a ...any)  { l.emitf("warn", f, a) }
func (l zerologLogger) Error(m string)            { l.emit("error", m) }
func (l zerologLogger) Errorf(f string, a ...any) { l.emitf("error", f, a) }

func (l zerologLogger) emit(level, m string) {
	l.log.Debug().Str("pion_level", level).Msg(m)
}

// emitf formats only when debug logging is on.
func (l zerologLogger) emitf(level, f string, a []any) {
	if e := l.log.Debug(); e.Enabled() {
		e.Str("pion_level", level).Msg(fmt.Sprintf(f, a...))
	}
}
