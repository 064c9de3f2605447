package configs

import (
	"strings"
	"time"
)

// ConferencesConfig configures conference calls hosted by the gateway:
// Matrix rooms with a dial-in number and PIN, mixed by the gateway.
type ConferencesConfig struct {
	// Enabled lets rooms have conference calls. Default true.
	Enabled bool `yaml:"enabled"`
	// DialIn are the E.164 numbers (DIDs routed to the gateway by a trunk)
	// that answer with the PIN prompt. Default none (Matrix participants and
	// dial-out still work).
	DialIn []string `yaml:"dial_in"`
	// CommandPowerLevel is the room power level needed to start or stop a
	// conference, dial out, mute or remove participants. Default 50.
	CommandPowerLevel int `yaml:"command_power_level"`
	// MaxParticipants per conference. Default 50.
	MaxParticipants int `yaml:"max_participants"`
	// MaxSpeakers mixes only the loudest N speakers (0 = everyone). Default 0.
	MaxSpeakers int `yaml:"max_speakers"`
	// MixRate is the mixing rate, 8000 or 16000 Hz. Default 16000.
	MixRate int `yaml:"mix_rate"`
	// PINDigits is the length of generated PINs, 4-12. Default 6.
	PINDigits int `yaml:"pin_digits"`
	// PINAttempts per call before the gateway hangs up. Default 3.
	PINAttempts int `yaml:"pin_attempts"`
	// PINTimeout bounds PIN entry. Default 60s.
	PINTimeout time.Duration `yaml:"pin_timeout"`
	// PINFailures wrong PINs from one caller within PINFailureWindow refuse
	// further dial-ins from it. Default 6 in 10m.
	PINFailures      int           `yaml:"pin_failures"`
	PINFailureWindow time.Duration `yaml:"pin_failure_window"`
	// DialOutTimeout bounds how long a dialled-out number rings. Default 60s.
	DialOutTimeout time.Duration `yaml:"dial_out_timeout"`
	// RoomHeader is the SIP header naming the conference room (a room ID)
	// that trusted trunks may set to skip the PIN. Default X-Matrix-Room.
	RoomHeader string `yaml:"room_header"`
	// RoomHeaderTrunks are the trunks whose RoomHeader is trusted. Default none.
	RoomHeaderTrunks []string `yaml:"room_header_trunks"`
	// Rooms are conferences from the configuration: a room ID and its PIN.
	Rooms []ConferenceRoom `yaml:"rooms"`
}

// ConferenceRoom is a conference given in the configuration.
type ConferenceRoom struct {
	// Room is the Matrix room ID, like !abc:example.org.
	Room string `yaml:"room"`
	// PIN is the dial-in PIN, digits only.
	PIN string `yaml:"pin"`
}

// ConferencesDefaults returns the conference defaults.
func ConferencesDefaults() ConferencesConfig {
	return ConferencesConfig{
		Enabled:           true,
		CommandPowerLevel: 50,
		MaxParticipants:   50,
		MixRate:           16000,
		PINDigits:         6,
		PINAttempts:       3,
		PINTimeout:        60 * time.Second,
		PINFailures:       6,
		PINFailureWindow:  10 * time.Minute,
		DialOutTimeout:    60 * time.Second,
		RoomHeader:        "X-Matrix-Room",
	}
}

// TrustsRoomHeader reports whether trunk may name a conference room in
// the RoomHeader.
func (c *ConferencesConfig) TrustsRoomHeader(trunk string) bool {
	for _, t := range c.RoomHeaderTrunks {
		if t == trunk {
			return true
		}
	}
	return false
}

func (c *Config) validateConferences(v *validator) {
	cf := c.Conferences
	for i, n := range cf.DialIn {
		if !e164Re.MatchString(n) {
			v.bad(indexPath("conferences.dial_in", i), "must be an E.164 number like +15550100, got %q", n)
		}
		for _, r := range c.Inbound.Routes {
			if matchAny(r.Numbers, n) {
				v.bad(indexPath("conferences.dial_in", i), "%s is also routed to %s by inbound.routes; a number is either a conference dial-in or a user's", n, r.User)
				break
			}
		}
	}
	if cf.CommandPowerLevel < 0 || cf.CommandPowerLevel > 100 {
		v.bad("conferences.command_power_level", "must be 0-100, got %d", cf.CommandPowerLevel)
	}
	if cf.MaxParticipants < 2 || cf.MaxParticipants > 500 {
		v.bad("conferences.max_participants", "must be 2-500, got %d", cf.MaxParticipants)
	}
	if cf.MaxSpeakers < 0 {
		v.bad("conferences.max_speakers", "must be 0 (everyone) or positive, got %d", cf.MaxSpeakers)
	}
	if cf.MixRate != 8000 && cf.MixRate != 16000 {
		v.bad("conferences.mix_rate", "must be 8000 or 16000, got %d", cf.MixRate)
	}
	if cf.PINDigits < 4 || cf.PINDigits > 12 {
		v.bad("conferences.pin_digits", "must be 4-12, got %d", cf.PINDigits)
	}
	if cf.PINAttempts < 1 || cf.PINAttempts > 10 {
		v.bad("conferences.pin_attempts", "must be 1-10, got %d", cf.PINAttempts)
	}
	if cf.PINTimeout < 10*time.Second || cf.PINTimeout > 10*time.Minute {
		v.bad("conferences.pin_timeout", "must be between 10s and 10m, got %s", cf.PINTimeout)
	}
	if cf.PINFailures < 1 {
		v.bad("conferences.pin_failures", "must be at least 1, got %d", cf.PINFailures)
	}
	if cf.PINFailureWindow < time.Minute || cf.PINFailureWindow > 24*time.Hour {
		v.bad("conferences.pin_failure_window", "must be between 1m and 24h, got %s", cf.PINFailureWindow)
	}
	if cf.DialOutTimeout < 5*time.Second || cf.DialOutTimeout > 5*time.Minute {
		v.bad("conferences.dial_out_timeout", "must be between 5s and 5m, got %s", cf.DialOutTimeout)
	}
	if cf.RoomHeader == "" || strings.ContainsAny(cf.RoomHeader, " :\t\r\n") {
		v.bad("conferences.room_header", "must be a SIP header name, got %q", cf.RoomHeader)
	}
	for i, name := range cf.RoomHeaderTrunks {
		found := false
		for _, t := range c.SIP.Trunks {
			found = found || t.Name == name
		}
		if !found {
			v.bad(indexPath("conferences.room_header_trunks", i), "no trunk is named %q", name)
		}
	}
	pins := map[string]bool{}
	for i, r := range cf.Rooms {
		p := indexPath("conferences.rooms", i)
		if !strings.HasPrefix(r.Room, "!") || !strings.Contains(r.Room, ":") {
			v.bad(p+".room", "must be a room ID like !abc:example.org, got %q", r.Room)
		}
		if len(r.PIN) < 4 || len(r.PIN) > 12 || !digitsRe.MatchString(r.PIN) {
			v.bad(p+".pin", "must be 4-12 digits")
		} else if pins[r.PIN] {
			v.bad(p+".pin", "is used by another room")
		}
		pins[r.PIN] = true
	}
}
