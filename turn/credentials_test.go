package turn

import (
	"encoding/hex"
	"testing"
	"time"
)

func TestRESTCredentialsMatchHomeserverScheme(t *testing.T) {
	// Vector computed with: printf %s "$U" | openssl dgst -sha1 -hmac "$SECRET" -binary | base64
	now := time.Unix(1700000000-3600, 0)
	user, pass := RESTCredentials("n0t-a-secret", "@alice:example.org", time.Hour, now)
	if user != "1700000000:@alice:example.org" || pass != "pfwTQe6YtijRvuVp44aiZ3/Q2Us=" {
		t.Errorf("got %q / %q", user, pass)
	}
	exp, u, err := ParseRESTUsername(user)
	if err != nil || u != "@alice:example.org" || exp.Unix() != 1700000000 {
		t.Errorf("parse: %v %q %v", exp, u, err)
	}
	for _, bad := range []string{"", "alice", ":@a:b", "12x:@a:b", "1700000000:", "-5:@a:b", "1234567890123:@a:b"} {
		if _, _, err := ParseRESTUsername(bad); err == nil {
			t.Errorf("ParseRESTUsername(%q) accepted", bad)
		}
	}
	// RFC 8489 long-term key: MD5("alice:gw.test:pw").
	if got := hex.EncodeToString(longTermKey("alice", "gw.test", "pw")); got != "bf3a186e1ebb09ec0c80fbc90d902a67" {
		t.Errorf("key %s", got)
	}
}

func TestAuthenticator(t *testing.T) {
	now := time.Unix(2_000_000_000, 0)
	a := &authenticator{realm: "gw.test", secret: "s", static: map[string]string{"bench": "pw"}, now: func() time.Time { return now }}
	valid, _ := RESTCredentials("s", "@bob:gw.test", time.Minute, now)
	expired, _ := RESTCredentials("s", "@bob:gw.test", -time.Second, now)
	atNow, _ := RESTCredentials("s", "@bob:gw.test", 0, now)
	cases := []struct {
		user, realm string
		why         authFailure
		quota       string
	}{
		{valid, "gw.test", authOK, "@bob:gw.test"},
		{expired, "gw.test", authExpired, "@bob:gw.test"},
		{atNow, "gw.test", authExpired, "@bob:gw.test"},
		{valid, "other", authWrongRealm, ""},
		{"bench", "gw.test", authOK, "bench"},
		{"nobody", "gw.test", authUnknown, ""},
	}
	for _, c := range cases {
		key, quota, why := a.key(c.user, c.realm)
		if why != c.why || quota != c.quota || (why == authOK) != (key != nil) {
			t.Errorf("key(%q, %q) = %x, %q, %q; want why %q quota %q", c.user, c.realm, key, quota, why, c.why, c.quota)
		}
	}
	if k, _, _ := a.key(valid, "gw.test"); string(k) != string(longTermKey(valid, "gw.test", RESTPassword("s", valid))) {
		t.Error("REST key is not MD5(user:realm:HMAC password)")
	}
	noSecret := &authenticator{realm: "gw.test", now: time.Now}
	if _, _, why := noSecret.key(valid, "gw.test"); why != authUnknown {
		t.Errorf("REST name accepted without a secret: %q", why)
	}
}
