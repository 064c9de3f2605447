package configs

import (
	"errors"
	"strings"
	"testing"
)

// validYAML is a complete, valid configuration used as the base of tests.
const validYAML = `homeserver:
  url: https://matrix.gateway.test
  domain: gateway.test
appservice:
  registration: registration.yaml
authorization:
  users: ["@*:gateway.test"]
  numbers: ["+1*"]
  deny_numbers: ["+1900*"]
  caller_ids: {"@alice:gateway.test": "+15550100100"}
sip:
  trunks:
    - name: main
      host: 127.0.0.1
media:
  rtp_listen_ip: 127.0.0.1
`

// mustValid parses validYAML and fails the test on any problem.
func mustValid(t *testing.T) *Config {
	t.Helper()
	cfg, err := Parse([]byte(validYAML), "/etc/gateway")
	if err != nil {
		t.Fatalf("base config invalid: %v", err)
	}
	return cfg
}

// problemsOf returns the problems of err, failing unless it is a *ValidationError.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		t.Fatal("expected problems, got none")
	}
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error is %T, not *ValidationError: %v", err, err)
	}
	return verr.Problems
}

// findProblem returns the problem at path whose message contains substr.
func findProblem(problems []Problem, path, substr string) (Problem, bool) {
	for _, p := range problems {
		if p.Path == path && strings.Contains(p.Message, substr) {
			return p, true
		}
	}
	return Problem{}, false
}

// withKeys returns validYAML with extra ("section:\n  key: value\n...")
// merged in: the lines go under the existing section header when there is one.
func withKeys(extra string) string {
	section, body, _ := strings.Cut(extra, "\n")
	if strings.HasPrefix(validYAML, section+"\n") || strings.Contains(validYAML, "\n"+section+"\n") {
		return strings.Replace(validYAML, section+"\n", section+"\n"+body, 1)
	}
	return validYAML + extra
}
