package signalling

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func mustPolicy(t *testing.T, cfg PolicyConfig) *Policy {
	t.Helper()
	p, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func policyCause(err error) (Cause, string, bool) {
	var pe *PolicyError
	if !errors.As(err, &pe) {
		return 0, "", false
	}
	return pe.Cause, pe.Reason, true
}

func TestAuthorize(t *testing.T) {
	p := mustPolicy(t, PolicyConfig{
		Users:       []string{"@*:example.org", "@guest?:other.net"},
		Numbers:     []string{"+44*", "+1555???????", `re:\+49(30|40)\d{4,10}`},
		DenyNumbers: []string{"+449*", "+1900*", "re:\\+44(70|871)\\d+"},
	})
	for _, tc := range []struct {
		user, number string
		cause        Cause // CauseNormal: allowed
		reason       string
	}{
		{"@alice:example.org", "+442079460000", CauseNormal, ""},
		{"@bob:example.org", "+15550100100", CauseNormal, ""},
		{"@guest1:other.net", "+4930123456", CauseNormal, ""},
		{"@alice:example.org", "+494012345678", CauseNormal, ""},
		{"@mallory:evil.org", "+442079460000", CauseForbidden, `user "@mallory:evil.org" not allowed to dial out`},
		{"@guest12:other.net", "+442079460000", CauseForbidden, `user "@guest12:other.net" not allowed to dial out`},
		{"@alice:example.org.evil", "+442079460000", CauseForbidden, `user "@alice:example.org.evil" not allowed to dial out`},
		{"", "+442079460000", CauseForbidden, `user "" not allowed to dial out`},
		{"@alice:example.org", "+449012345678", CauseForbidden, "number +449012345678 is denied"},
		{"@alice:example.org", "+19005550100", CauseForbidden, "number +19005550100 is denied"},
		{"@alice:example.org", "+12125550100", CauseForbidden, "number +12125550100 not in allowed destinations"},
		{"@alice:example.org", "+447012345678", CauseForbidden, "number +447012345678 is denied"},
		{"@alice:example.org", "+15550100", CauseForbidden, "number +15550100 not in allowed destinations"}, // ? needs 7 digits
		{"@alice:example.org", "+4989123456", CauseForbidden, "number +4989123456 not in allowed destinations"},
		{"@alice:example.org", "+49301", CauseInvalidNumber, `number "+49301" is not in E.164 form`},
		{"@alice:example.org", "+44 20 7946 0000", CauseInvalidNumber, `number "+44 20 7946 0000" is not in E.164 form`},
		{"@alice:example.org", "442079460000", CauseInvalidNumber, `number "442079460000" is not in E.164 form`},
	} {
		err := p.Authorize(tc.user, tc.number)
		if tc.cause == CauseNormal {
			if err != nil {
				t.Errorf("Authorize(%q, %q) = %v; want allowed", tc.user, tc.number, err)
			}
			continue
		}
		cause, reason, ok := policyCause(err)
		if !ok || cause != tc.cause || reason != tc.reason {
			t.Errorf("Authorize(%q, %q) = %v; want %v %q", tc.user, tc.number, err, tc.cause, tc.reason)
		}
		if CauseOf(err) != tc.cause {
			t.Errorf("CauseOf = %v", CauseOf(err))
		}
		if !strings.HasPrefix(err.Error(), "signalling: call refused: ") {
			t.Errorf("error text %q", err)
		}
	}
}

func TestDenyIsCheckedFirst(t *testing.T) {
	p := mustPolicy(t, PolicyConfig{Users: []string{"*"}, Numbers: []string{"*"}, DenyNumbers: []string{"+1900*"}})
	if err := p.Authorize("@a:b", "+19005550100"); err == nil {
		t.Fatal("deny rule did not win over allow-all")
	}
	if err := p.Authorize("@a:b", "+15550100100"); err != nil {
		t.Fatal(err)
	}
}

func TestEmptyListsDenyAll(t *testing.T) {
	for _, cfg := range []PolicyConfig{
		{},
		{Users: []string{"*"}},
		{Numbers: []string{"*"}},
	} {
		p := mustPolicy(t, cfg)
		if cause, _, _ := policyCause(p.Authorize("@a:b", "+15550100100")); cause != CauseForbidden {
			t.Errorf("%+v allowed a call", cfg)
		}
	}
}

func TestNewPolicyReportsEveryProblem(t *testing.T) {
	_, err := NewPolicy(PolicyConfig{
		Users:           []string{"", "@a b:c"},
		Numbers:         []string{"+44 20*", "re:(", "", "44+*"},
		DenyNumbers:     []string{"re:", "+1900[0-9]"},
		MaxCalls:        -1,
		MaxCallsPerUser: -2,
	})
	if err == nil {
		t.Fatal("NewPolicy accepted a bad config")
	}
	msg := err.Error()
	for _, want := range []string{
		"max_calls must", "max_calls_per_user must", `user pattern ""`, `user pattern "@a b:c"`,
		`number pattern "+44 20*"`, `number pattern "re:("`, `number pattern ""`, `number pattern "44+*"`,
		`deny number pattern "re:"`, `deny number pattern "+1900[0-9]"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if !strings.HasPrefix(msg, "signalling: ") {
		t.Errorf("error %q lacks the package prefix", msg)
	}
}

func TestRegexIsAnchored(t *testing.T) {
	p := mustPolicy(t, PolicyConfig{Users: []string{"*"}, Numbers: []string{`re:\+4930\d+`}})
	if p.Authorize("@a:b", "+4930123456") != nil {
		t.Error("regex did not match")
	}
	if p.Authorize("@a:b", "+14930123456") == nil {
		t.Error("regex matched without a start anchor")
	}
	p = mustPolicy(t, PolicyConfig{Users: []string{"*"}, Numbers: []string{`re:\+4930|\+33`}})
	if p.Authorize("@a:b", "+4930123456") == nil || p.Authorize("@a:b", "+33123456789") == nil {
		t.Error("alternation escaped the anchors")
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"", "", true},
		{"", "a", false},
		{"a*", "a", true},
		{"a*b", "axxb", true},
		{"a*b", "axxbc", false},
		{"a*b*c", "abbbc", true},
		{"*:example.org", "@u:example.org", true},
		{"*:example.org", "@u:example.org.uk", false},
		{"@?:x", "@é:x", true}, // ? is one rune
		{"@??:x", "@é:x", false},
		{"+1555???????", "+15550100100", true},
		{"+1555???????", "+155501001001", false},
		{"**a", "xa", true},
		{"a?*", "a", false},
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 60), false},
	} {
		if got := globMatch(tc.pat, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pat, tc.s, got)
		}
	}
}

func TestAcquireLimits(t *testing.T) {
	p := mustPolicy(t, PolicyConfig{MaxCallsPerUser: 2, MaxCalls: 3})
	r1, err := p.Acquire("@a:x")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := p.Acquire("@a:x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Acquire("@a:x")
	if cause, reason, _ := policyCause(err); cause != CauseLimit || reason != `user "@a:x" has too many calls at once` {
		t.Fatalf("third call for @a:x: %v", err)
	}
	r3, err := p.Acquire("@b:x")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Acquire("@c:x")
	if cause, reason, _ := policyCause(err); cause != CauseLimit || reason != "the gateway's call limit is reached" {
		t.Fatalf("fourth call: %v", err)
	}
	if CauseOf(err) != CauseLimit {
		t.Errorf("CauseOf = %v", CauseOf(err))
	}
	r1()
	r1() // idempotent: must not free a second slot
	if total, a := p.Active("@a:x"); total != 2 || a != 1 {
		t.Fatalf("after release: total %d, @a:x %d", total, a)
	}
	r4, err := p.Acquire("@c:x")
	if err != nil {
		t.Fatal(err)
	}
	r2()
	r3()
	r4()
	if total, a := p.Active("@a:x"); total != 0 || a != 0 || len(p.perUser) != 0 {
		t.Fatalf("after all releases: total %d, @a:x %d, map %v", total, a, p.perUser)
	}
}

func TestAcquireUnlimited(t *testing.T) {
	p := mustPolicy(t, PolicyConfig{})
	var rels []func()
	for range 1000 {
		r, err := p.Acquire("@a:x")
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, r)
	}
	for _, r := range rels {
		r()
	}
	if total, _ := p.Active(""); total != 0 {
		t.Fatalf("total %d", total)
	}
}

// TestAcquireConcurrent hammers Acquire and release from many goroutines;
// run with -race. The limits must hold at every moment: a goroutine that
// holds a slot records the counts it sees, and they never exceed the limits.
func TestAcquireConcurrent(t *testing.T) {
	const (
		perUser    = 3
		maxCalls   = 10
		users      = 8
		goroutines = 64
		rounds     = 200
	)
	p := mustPolicy(t, PolicyConfig{MaxCallsPerUser: perUser, MaxCalls: maxCalls})
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		granted  int
		refused  int
		failures []string
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("@u%d:x", g%users)
			for range rounds {
				rel, err := p.Acquire(user)
				if err != nil {
					if c, _, _ := policyCause(err); c != CauseLimit {
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
					}
					mu.Lock()
					refused++
					mu.Unlock()
					continue
				}
				total, mine := p.Active(user)
				if total > maxCalls || mine > perUser || mine < 1 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("total %d, user %d", total, mine))
					mu.Unlock()
				}
				mu.Lock()
				granted++
				mu.Unlock()
				// Release twice from two goroutines: must count once.
				var rw sync.WaitGroup
				rw.Add(2)
				go func() { defer rw.Done(); rel() }()
				go func() { defer rw.Done(); rel() }()
				rw.Wait()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d violations, first: %s", len(failures), failures[0])
	}
	if granted+refused != goroutines*rounds || granted == 0 {
		t.Fatalf("granted %d refused %d", granted, refused)
	}
	if total, _ := p.Active(""); total != 0 || len(p.perUser) != 0 {
		t.Fatalf("leaked slots: total %d, map %v", total, p.perUser)
	}
}

func TestAuthorizeConcurrent(t *testing.T) {
	p := mustPolicy(t, PolicyConfig{Users: []string{"@*:x"}, Numbers: []string{"+44*", `re:\+1\d{10}`}, DenyNumbers: []string{"+449*"}})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				num := fmt.Sprintf("+44%010d", i+g)
				if err := p.Authorize("@u:x", num); err != nil {
					errs <- err
					return
				}
				if p.Authorize("@u:x", fmt.Sprintf("+449%09d", i)) == nil {
					errs <- errors.New("denied number allowed")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func BenchmarkAuthorize(b *testing.B) {
	p, err := NewPolicy(PolicyConfig{
		Users:       []string{"@*:example.org"},
		Numbers:     []string{"+1*", "+44*", `re:\+49(30|40)\d+`},
		DenyNumbers: []string{"+1900*", "+449*"},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Authorize("@alice:example.org", "+4930123456"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	p, err := NewPolicy(PolicyConfig{MaxCallsPerUser: 10, MaxCalls: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rel, err := p.Acquire("@alice:example.org")
			if err == nil {
				rel()
			}
		}
	})
}
