package configs

import (
	"testing"
	"time"
)

func TestConferencesDefaultsValidate(t *testing.T) {
	c := validModemConfig(t)
	c.Modem.Enabled = false
	for _, p := range c.validate() {
		t.Errorf("default config has a problem: %v", p)
	}
	d := ConferencesDefaults()
	if !d.Enabled || d.MixRate != 16000 || d.PINDigits != 6 || d.CommandPowerLevel != 50 || d.RoomHeader != "X-Matrix-Room" {
		t.Errorf("defaults %+v", d)
	}
}

func TestConferencesValidationReportsEveryProblem(t *testing.T) {
	c := validModemConfig(t)
	c.Modem.Enabled = false
	c.Inbound.Routes = []InboundRoute{{Numbers: []string{"+1555333*"}, User: "@alice:gw.test"}}
	c.Conferences = ConferencesConfig{
		Enabled:           true,
		DialIn:            []string{"+15553330000", "5550100"},
		CommandPowerLevel: 101,
		MaxParticipants:   1,
		MaxSpeakers:       -1,
		MixRate:           44100,
		PINDigits:         3,
		PINAttempts:       0,
		PINTimeout:        time.Second,
		PINFailures:       0,
		PINFailureWindow:  time.Second,
		DialOutTimeout:    time.Hour,
		RoomHeader:        "X Room",
		RoomHeaderTrunks:  []string{"nope"},
		Rooms:             []ConferenceRoom{{Room: "general", PIN: "12ab"}, {Room: "!a:gw.test", PIN: "1234"}, {Room: "!b:gw.test", PIN: "1234"}},
	}
	problems := c.validate()
	for _, want := range []struct{ path, substr string }{
		{"conferences.dial_in[0]", "also routed"},
		{"conferences.dial_in[1]", "E.164"},
		{"conferences.command_power_level", "0-100"},
		{"conferences.max_participants", "2-500"},
		{"conferences.max_speakers", "positive"},
		{"conferences.mix_rate", "8000 or 16000"},
		{"conferences.pin_digits", "4-12"},
		{"conferences.pin_attempts", "1-10"},
		{"conferences.pin_timeout", "between"},
		{"conferences.pin_failures", "at least 1"},
		{"conferences.pin_failure_window", "between"},
		{"conferences.dial_out_timeout", "between"},
		{"conferences.room_header", "header name"},
		{"conferences.room_header_trunks[0]", "no trunk"},
		{"conferences.rooms[0].room", "room ID"},
		{"conferences.rooms[0].pin", "digits"},
		{"conferences.rooms[2].pin", "another room"},
	} {
		if _, ok := findProblem(problems, want.path, want.substr); !ok {
			t.Errorf("no problem at %s containing %q; got %v", want.path, want.substr, problems)
		}
	}
}
