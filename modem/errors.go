package modem

import (
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/matrix-gateway/gateway/signalling"
)

// Sentinel errors of the modem backend.
var (
	// ErrNoModem means no voice-capable modem is present (or ModemManager is not running).
	ErrNoModem = errors.New("modem: no voice-capable modem")
	// ErrNotRegistered means the modem is not registered on a network.
	ErrNotRegistered = errors.New("modem: modem not registered on a network")
	// ErrClosed means the client was closed.
	ErrClosed = errors.New("modem: client closed")
	// ErrCallGone means the call no longer exists.
	ErrCallGone = errors.New("modem: call gone")
)

// causeError wraps err so that signalling.CauseOf finds cause.
func causeError(cause signalling.Cause, detail string, err error) error {
	return signalling.NewCauseError(cause, "modem: "+detail, err)
}

// dbusCause maps a D-Bus error from ModemManager to a hangup cause.
func dbusCause(err error) signalling.Cause {
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.ModemManager1.Error.Core.InvalidArgs",
			"org.freedesktop.ModemManager1.Error.MobileEquipment.InvalidDialString",
			"org.freedesktop.ModemManager1.Error.MobileEquipment.DialStringTooLong":
			return signalling.CauseInvalidNumber
		case "org.freedesktop.ModemManager1.Error.MobileEquipment.SimNotInserted",
			"org.freedesktop.ModemManager1.Error.MobileEquipment.NoNetwork",
			"org.freedesktop.ModemManager1.Error.Core.WrongState",
			"org.freedesktop.DBus.Error.ServiceUnknown",
			"org.freedesktop.DBus.Error.UnknownObject",
			"org.freedesktop.DBus.Error.UnknownMethod":
			return signalling.CauseUnreachable
		case "org.freedesktop.ModemManager1.Error.Core.Unauthorized",
			"org.freedesktop.ModemManager1.Error.MobileEquipment.NotAllowed",
			"org.freedesktop.DBus.Error.AccessDenied":
			return signalling.CauseForbidden
		}
	}
	return signalling.CauseServerError
}

func dbusErr(what string, err error) error {
	return causeError(dbusCause(err), what, fmt.Errorf("%w", err))
}
