package configs

import (
	"strings"
	"testing"
	"time"
)

func validModemConfig(t *testing.T) *Config {
	t.Helper()
	c := Defaults()
	c.Homeserver = HomeserverConfig{URL: "https://hs.gw.test", Domain: "gw.test"}
	c.Authorization.Users = []string{"@alice:gw.test"}
	c.Authorization.Numbers = []string{"+1*"}
	tr := TrunkDefaults()
	tr.Name, tr.Host = "main", "10.0.0.1"
	c.SIP.Trunks = []Trunk{tr}
	c.Modem.Enabled = true
	c.Modem.Routes = []RouteConfig{{Numbers: []string{"+49*"}, Via: []string{"sip:main", "modem"}}}
	return c
}

func TestModemDefaultsValidate(t *testing.T) {
	c := validModemConfig(t)
	for _, p := range c.validate() {
		if strings.HasPrefix(p.Path, "modem") {
			t.Errorf("default modem section has a problem: %v", p)
		}
	}
	m := ModemDefaults()
	if m.Bus != "system" || !m.EnableModem || m.IPSetupTimeout != 8*time.Second || !m.Dialler.Enabled || m.Dialler.Bus != "session" || m.Links.MaxLossPercent != 20 ||
		m.Audio != (ModemAudioConfig{Rate: 8000}) {
		t.Errorf("defaults %+v", m)
	}
	if !m.IsEmergency("112") || !m.IsEmergency("+911") || m.IsEmergency("+15550100") {
		t.Error("IsEmergency")
	}
}

func TestModemValidationReportsEveryProblem(t *testing.T) {
	c := validModemConfig(t)
	c.Modem.Bus = "dbus"
	c.Modem.EmergencyNumbers = []string{"1"}
	c.Modem.IPSetupTimeout = time.Millisecond
	c.Modem.Links.MaxLossPercent = 150
	c.Modem.Links.ProbeTimeout = time.Minute
	c.Modem.Routes = []RouteConfig{
		{Numbers: []string{"+49x"}, Via: []string{"sip:nope", "modem", "modem", "gsm"}},
		{},
	}
	got := map[string]bool{}
	for _, p := range c.validate() {
		got[p.Path] = true
	}
	for _, want := range []string{
		"modem.bus", "modem.emergency_numbers[0]", "modem.ip_setup_timeout", "modem.links.max_loss_percent",
		"modem.links.probe_timeout", "modem.routes[0].numbers[0]", "modem.routes[0].via[0]", "modem.routes[0].via[2]",
		"modem.routes[0].via[3]", "modem.routes[1].via",
	} {
		if !got[want] {
			t.Errorf("no problem reported at %s (got %v)", want, got)
		}
	}
	// A disabled modem section is not checked.
	c.Modem.Enabled = false
	for _, p := range c.validate() {
		if strings.HasPrefix(p.Path, "modem") {
			t.Errorf("disabled modem section checked: %v", p)
		}
	}
}

func TestExampleModemSectionMatchesDefaults(t *testing.T) {
	cfg, err := Decode(Example(), "")
	if err != nil {
		t.Fatal(err)
	}
	d := ModemDefaults()
	m := cfg.Modem
	if m.Enabled || m.Bus != d.Bus || m.EnableModem != d.EnableModem || m.IPSetupTimeout != d.IPSetupTimeout ||
		m.Links != d.Links || m.Dialler != d.Dialler || m.Audio != d.Audio || strings.Join(m.EmergencyNumbers, ",") != strings.Join(d.EmergencyNumbers, ",") {
		t.Errorf("example modem section %+v differs from defaults %+v", m, d)
	}
	for _, k := range []string{"modem.enabled", "modem.bus", "modem.device", "modem.enable_modem", "modem.emergency_numbers",
		"modem.ip_setup_timeout", "modem.links.probe_interval", "modem.links.probe_timeout", "modem.links.max_rtt",
		"modem.links.max_loss_percent", "modem.routes", "modem.dialler.enabled", "modem.dialler.bus",
		"modem.audio.device", "modem.audio.rate"} {
		if _, ok := cfg.lines[k]; !ok {
			t.Errorf("example lacks %s", k)
		}
	}
}

func TestModemAudioValidation(t *testing.T) {
	for _, tc := range []struct {
		device string
		rate   int
		bad    []string // problem paths expected
	}{
		{"", 8000, nil},
		{"auto", 16000, nil},
		{"alsa:plughw:CARD=Modem,DEV=0", 8000, nil},
		{"alsa:default", 16000, nil},
		{"files:/dev/ttyUSB4,/dev/ttyUSB4", 8000, nil},
		{"files:/run/gw/cap.fifo,/run/gw/play.fifo", 8000, nil},
		{"", 44100, []string{"modem.audio.rate"}},
		{"", 0, []string{"modem.audio.rate"}},
		{"alsa:", 8000, []string{"modem.audio.device"}},
		{"alsa:hw 1", 8000, []string{"modem.audio.device"}},
		{"files:/dev/ttyUSB4", 8000, []string{"modem.audio.device"}},
		{"files:cap.fifo,play.fifo", 8000, []string{"modem.audio.device"}},
		{"files:/a,/b,/c", 8000, []string{"modem.audio.device"}},
		{"/dev/ttyUSB4", 16000, []string{"modem.audio.device"}},
		{"pulse:modem", 12000, []string{"modem.audio.device", "modem.audio.rate"}},
	} {
		c := validModemConfig(t)
		c.Modem.Audio = ModemAudioConfig{Device: tc.device, Rate: tc.rate}
		got := map[string]bool{}
		for _, p := range c.validate() {
			if strings.HasPrefix(p.Path, "modem.audio") {
				got[p.Path] = true
			}
		}
		if len(got) != len(tc.bad) {
			t.Errorf("device %q rate %d: problems %v, want %v", tc.device, tc.rate, got, tc.bad)
			continue
		}
		for _, p := range tc.bad {
			if !got[p] {
				t.Errorf("device %q rate %d: no problem at %s (got %v)", tc.device, tc.rate, p, got)
			}
		}
	}
	// The audio section is parsed from YAML and its problems carry key paths.
	cfgText := `
homeserver: {url: "https://hs.gw.test", domain: gw.test}
authorization: {users: ["@alice:gw.test"], numbers: ["+1*"]}
sip: {trunks: [{name: main, host: 10.0.0.1}]}
modem:
  enabled: true
  audio:
    device: "files:/tmp/cap"
    rate: 11025
`
	_, err := Parse([]byte(cfgText), "")
	for _, want := range []string{"modem.audio.device", "modem.audio.rate"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parse error %v does not name %s", err, want)
		}
	}
}
