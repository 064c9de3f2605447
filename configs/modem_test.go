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
	if m.Bus != "system" || !m.EnableModem || m.IPSetupTimeout != 8*time.Second || !m.Dialler.Enabled || m.Dialler.Bus != "session" || m.Links.MaxLossPercent != 20 {
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
		m.Links != d.Links || m.Dialler != d.Dialler || strings.Join(m.EmergencyNumbers, ",") != strings.Join(d.EmergencyNumbers, ",") {
		t.Errorf("example modem section %+v differs from defaults %+v", m, d)
	}
	for _, k := range []string{"modem.enabled", "modem.bus", "modem.device", "modem.enable_modem", "modem.emergency_numbers",
		"modem.ip_setup_timeout", "modem.links.probe_interval", "modem.links.probe_timeout", "modem.links.max_rtt",
		"modem.links.max_loss_percent", "modem.routes", "modem.dialler.enabled", "modem.dialler.bus"} {
		if _, ok := cfg.lines[k]; !ok {
			t.Errorf("example lacks %s", k)
		}
	}
}
