package sip

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestRegisterAgainstSippRegistrar registers with a real sipp registrar that
// challenges each REGISTER, checks the digest and grants a 2 s binding, so
// the registration must refresh (and authenticate again) on its own.
func TestRegisterAgainstSippRegistrar(t *testing.T) {
	sp := startSipp(t, "-sf", registrarScenario(t))
	u := newTestUA(t)
	var mu sync.Mutex
	var history []RegistrationStatus
	reg, err := u.Register(RegisterConfig{
		Trunk: "reg", Host: "127.0.0.1", Port: sp.port, User: "gwuser", Password: "gwsecret",
		Expires: 30 * time.Second, RetryMin: 200 * time.Millisecond,
	}, func(s RegistrationStatus) {
		mu.Lock()
		history = append(history, s)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	sp.wait(t) // the scenario passes only after two authenticated REGISTERs
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := 0
		for _, s := range history {
			if s.Registered {
				n++
			}
		}
		mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var ok []RegistrationStatus
	for _, s := range history {
		if s.Registered {
			ok = append(ok, s)
		}
	}
	if len(ok) < 2 {
		t.Fatalf("want a registration and a refresh, got %+v", history)
	}
	if got := time.Until(ok[1].Expires); got < 30*time.Second {
		t.Errorf("refreshed binding expires in %v, want the registrar's 60 s", got)
	}
	if st := reg.Status(); !st.Registered || st.Failures != 0 {
		t.Errorf("status %+v", st)
	}
}

// TestRegisterWrongPasswordBacksOff checks a refused registration is
// reported and retried with back-off.
func TestRegisterWrongPasswordBacksOff(t *testing.T) {
	sp := startSipp(t, "-sf", registrarScenario(t))
	u := newTestUA(t)
	failed := make(chan RegistrationStatus, 8)
	reg, err := u.Register(RegisterConfig{
		Trunk: "reg", Host: "127.0.0.1", Port: sp.port, User: "gwuser", Password: "wrong",
		RetryMin: time.Minute,
	}, func(s RegistrationStatus) {
		if !s.Registered {
			failed <- s
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	select {
	case s := <-failed:
		if s.Failures != 1 || s.LastError == "" {
			t.Errorf("status %+v", s)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a wrong password was not reported")
	}
}

func registrarScenario(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("testdata", "registrar.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
