package configs

import (
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ModemConfig configures the GSM modem backend (ModemManager over D-Bus),
// the dialler D-Bus API and IP-first/GSM-fallback routing.
type ModemConfig struct {
	// Enabled starts the modem backend in `gateway run`. Default false.
	Enabled bool `yaml:"enabled"`
	// Bus is ModemManager's D-Bus bus: "system" (default), "session" or a
	// D-Bus address ("unix:path=/run/dbus/system_bus_socket").
	Bus string `yaml:"bus"`
	// Device picks a modem by IMEI or ModemManager object path; empty (the
	// default) takes the first voice-capable modem.
	Device string `yaml:"device"`
	// EnableModem asks ModemManager to enable a modem found disabled.
	// Default true.
	EnableModem bool `yaml:"enable_modem"`
	// EmergencyNumbers always go out over GSM, even when the modem is in
	// emergency-only mode or has no SIM. Default 112, 911, 999, 000, 110, 118, 119.
	EmergencyNumbers []string `yaml:"emergency_numbers"`
	// IPSetupTimeout bounds an IP attempt's set-up (no ringing or answer by
	// then): the call is retried over the next route. Default 8s.
	IPSetupTimeout time.Duration `yaml:"ip_setup_timeout"`
	// Links are the thresholds under which IP routes are used.
	Links LinksConfig `yaml:"links"`
	// Routes are ordered routes per destination pattern; first match wins.
	// Empty (the default) means one route for every number: each SIP trunk
	// serving it, then the modem.
	Routes []RouteConfig `yaml:"routes"`
	// Dialler is the D-Bus dialler API on the session bus.
	Dialler DiallerConfig `yaml:"dialler"`
	// Audio says whether and how the gateway carries the audio of GSM calls
	// it bridges to Matrix.
	Audio ModemAudioConfig `yaml:"audio"`
	// IncomingUser is the Matrix user whose clients ring for incoming GSM
	// calls (from the caller's ghost, with audio per Audio). Empty (the
	// default): incoming GSM calls go to the dialler API.
	IncomingUser string `yaml:"incoming_user"`
}

// ModemAudioConfig configures the audio of GSM calls bridged by the gateway.
type ModemAudioConfig struct {
	// Device is where the modem's call audio is: "" (the default:
	// control-only, the phone routes GSM audio itself), "auto" (the
	// AudioPort tty ModemManager reports for the call, if any),
	// "alsa:<ALSA PCM name>" (arecord/aplay on that PCM) or
	// "files:<capture path>,<playback path>" (raw PCM streams such as a
	// modem's audio tty or FIFOs; absolute paths).
	Device string `yaml:"device"`
	// Rate is the PCM sample rate of the device in Hz: 8000 (default) or
	// 16000. With "auto" the modem's AudioFormat rate wins when reported.
	Rate int `yaml:"rate"`
}

// LinksConfig configures the link-quality estimator that IP routes depend on.
type LinksConfig struct {
	// ProbeInterval is the time between probes of the homeserver and the
	// trunks. Default 5s.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// ProbeTimeout bounds one probe; a probe that times out counts as lost.
	// Default 2s.
	ProbeTimeout time.Duration `yaml:"probe_timeout"`
	// MaxRTT is the highest smoothed round-trip time for IP calls. Default 400ms.
	MaxRTT time.Duration `yaml:"max_rtt"`
	// MaxLossPercent is the highest share of lost probes (over the last 10)
	// for IP calls, in percent, 0-100. Default 20.
	MaxLossPercent int `yaml:"max_loss_percent"`
}

// RouteConfig is the ordered list of ways to reach some numbers.
type RouteConfig struct {
	// Numbers are destination patterns (like authorization.numbers); empty
	// matches every number.
	Numbers []string `yaml:"numbers"`
	// Via lists the routes in order: "sip:<trunk name>" (needs the trunk
	// and the homeserver reachable), "matrix:<user ID>" (a Matrix call to
	// that user; needs the homeserver reachable) or "modem".
	Via []string `yaml:"via"`
}

// DiallerConfig configures the dialler D-Bus service.
type DiallerConfig struct {
	// Enabled exports the dialler API (Dial, Answer, Hangup, SendDtmf,
	// ListCalls). Default true when the modem backend is enabled.
	Enabled bool `yaml:"enabled"`
	// Bus is the bus the API is exported on: "session" (default), "system"
	// or a D-Bus address.
	Bus string `yaml:"bus"`
	// AudioDevice is the phone's own microphone and speaker ("alsa:<PCM>"
	// or "files:<capture>,<playback>"), bridged to calls the dialler places
	// over IP (SIP or Matrix) once answered. Empty (the default): such calls
	// are control-only. GSM calls never use it.
	AudioDevice string `yaml:"audio_device"`
	// AudioRate is AudioDevice's sample rate, 8000 or 16000 (default 16000).
	AudioRate int `yaml:"audio_rate"`
}

// DefaultEmergencyNumbers are the emergency numbers of modem.emergency_numbers.
var DefaultEmergencyNumbers = []string{"112", "911", "999", "000", "110", "118", "119"}

// ModemDefaults returns the defaults of the modem section.
func ModemDefaults() ModemConfig {
	return ModemConfig{
		Bus:              "system",
		EnableModem:      true,
		EmergencyNumbers: append([]string(nil), DefaultEmergencyNumbers...),
		IPSetupTimeout:   8 * time.Second,
		Links:            LinksConfig{ProbeInterval: 5 * time.Second, ProbeTimeout: 2 * time.Second, MaxRTT: 400 * time.Millisecond, MaxLossPercent: 20},
		Dialler:          DiallerConfig{Enabled: true, Bus: "session", AudioRate: 16000},
		Audio:            ModemAudioConfig{Rate: 8000},
	}
}

var emergencyRe = regexp.MustCompile(`^\+?[0-9]{2,6}$`)

// IsEmergency reports whether number is one of modem.emergency_numbers
// (with or without a leading '+').
func (m *ModemConfig) IsEmergency(number string) bool {
	n := strings.TrimPrefix(number, "+")
	for _, e := range m.EmergencyNumbers {
		if n == e {
			return true
		}
	}
	return false
}

// validateModem checks the modem section (only when enabled).
func (c *Config) validateModem(v *validator) {
	m := c.Modem
	if !m.Enabled {
		return
	}
	if m.IncomingUser != "" && !validUserID(m.IncomingUser) {
		v.bad("modem.incoming_user", "must be empty or a Matrix user ID like @alice:example.org, got %q", m.IncomingUser)
	}
	if m.IncomingUser != "" && m.Audio.Device == "" {
		v.bad("modem.incoming_user", "needs modem.audio.device: without GSM audio the Matrix user would answer to silence")
	}
	busOK := func(path, b string, allowed ...string) {
		for _, a := range allowed {
			if b == a {
				return
			}
		}
		if !strings.HasPrefix(b, "unix:") && !strings.HasPrefix(b, "tcp:") {
			v.bad(path, "must be %s or a D-Bus address (unix:path=...), got %q", strings.Join(allowed, " or "), b)
		}
	}
	busOK("modem.bus", m.Bus, "system", "session")
	if m.Dialler.Enabled {
		busOK("modem.dialler.bus", m.Dialler.Bus, "session", "system")
	}
	for i, e := range m.EmergencyNumbers {
		if !emergencyRe.MatchString(e) {
			v.bad(indexPath("modem.emergency_numbers", i), "must be 2 to 6 digits, got %q", e)
		}
	}
	if m.IPSetupTimeout < 500*time.Millisecond || m.IPSetupTimeout > time.Minute {
		v.bad("modem.ip_setup_timeout", "must be between 500ms and 1m, got %s", m.IPSetupTimeout)
	}
	l := m.Links
	if l.ProbeInterval < 100*time.Millisecond {
		v.bad("modem.links.probe_interval", "must be at least 100ms, got %s", l.ProbeInterval)
	}
	if l.ProbeTimeout <= 0 || (l.ProbeInterval > 0 && l.ProbeTimeout > l.ProbeInterval) {
		v.bad("modem.links.probe_timeout", "must be positive and at most probe_interval, got %s", l.ProbeTimeout)
	}
	if l.MaxRTT < 0 {
		v.bad("modem.links.max_rtt", "must not be negative, got %s", l.MaxRTT)
	}
	if l.MaxLossPercent < 0 || l.MaxLossPercent > 100 {
		v.bad("modem.links.max_loss_percent", "must be between 0 and 100, got %d", l.MaxLossPercent)
	}
	validateModemAudio(v, m.Audio)
	if d := m.Dialler; d.AudioDevice != "" || d.AudioRate != 16000 {
		if d.AudioDevice == "auto" {
			v.bad("modem.dialler.audio_device", "\"auto\" names the modem's audio port; the dialler's device is the phone's microphone and speaker, like \"alsa:default\"")
		} else {
			validateAudioDevice(v, "modem.dialler.audio_device", "modem.dialler.audio_rate", d.AudioDevice, d.AudioRate)
		}
	}
	trunks := map[string]bool{}
	for _, t := range c.SIP.Trunks {
		trunks[t.Name] = true
	}
	for i, r := range m.Routes {
		path := indexPath("modem.routes", i)
		for j, p := range r.Numbers {
			v.pattern(indexPath(path+".numbers", j), p)
		}
		if len(r.Via) == 0 {
			v.bad(path+".via", "required: the routes in order, like [\"sip:main\", \"modem\"]")
		}
		seen := map[string]bool{}
		for j, via := range r.Via {
			vp := indexPath(path+".via", j)
			if seen[via] {
				v.bad(vp, "route %q listed twice", via)
			}
			seen[via] = true
			user, isMatrix := strings.CutPrefix(via, "matrix:")
			switch name, ok := strings.CutPrefix(via, "sip:"); {
			case via == "modem":
			case ok && trunks[name]:
			case ok:
				v.bad(vp, "no trunk named %q in sip.trunks", name)
			case isMatrix && validUserID(user):
			case isMatrix:
				v.bad(vp, "matrix: needs a Matrix user ID, like \"matrix:@bob:example.org\", got %q", via)
			default:
				v.bad(vp, "must be \"modem\", \"sip:<trunk name>\" or \"matrix:<user ID>\", got %q", via)
			}
		}
	}
}

// validateModemAudio checks modem.audio.
func validateModemAudio(v *validator, a ModemAudioConfig) {
	validateAudioDevice(v, "modem.audio.device", "modem.audio.rate", a.Device, a.Rate)
}

// validateAudioDevice checks an audio device string and its rate.
func validateAudioDevice(v *validator, path, ratePath, device string, rate int) {
	if rate != 8000 && rate != 16000 {
		v.bad(ratePath, "must be 8000 or 16000, got %d", rate)
	}
	a := ModemAudioConfig{Device: device}
	switch kind, arg, _ := strings.Cut(a.Device, ":"); {
	case a.Device == "" || a.Device == "auto":
	case kind == "alsa":
		if arg == "" || strings.ContainsAny(arg, " \t\n") {
			v.bad(path, "alsa: needs an ALSA PCM name without spaces, like \"alsa:plughw:CARD=Modem\", got %q", a.Device)
		}
	case kind == "files":
		capture, playback, ok := strings.Cut(arg, ",")
		if !ok || strings.Contains(playback, ",") || !filepath.IsAbs(capture) || !filepath.IsAbs(playback) {
			v.bad(path, "files: needs two absolute paths, \"files:<capture>,<playback>\", got %q", a.Device)
		}
	default:
		v.bad(path, "must be \"\" (control-only), \"auto\", \"alsa:<PCM name>\" or \"files:<capture>,<playback>\", got %q", a.Device)
	}
}
