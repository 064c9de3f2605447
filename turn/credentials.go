package turn

import (
	"crypto/hmac"
	"crypto/md5"  //nolint:gosec // RFC 8489 long-term credentials are MD5.
	"crypto/sha1" //nolint:gosec // TURN REST passwords are HMAC-SHA1.
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// RESTCredentials returns the TURN REST user name and password for userID
// valid until now+ttl, exactly as Synapse and Dendrite hand them out from
// /voip/turnServer: username "<expiry unix seconds>:<userID>", password
// base64(HMAC-SHA1(secret, username)).
func RESTCredentials(secret, userID string, ttl time.Duration, now time.Time) (username, password string) {
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + userID
	return username, RESTPassword(secret, username)
}

// RESTPassword returns base64(HMAC-SHA1(secret, username)), the password of
// a TURN REST user name.
func RESTPassword(secret, username string) string {
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseRESTUsername splits "<expiry>:<user>" into the expiry time and the
// user; ErrBadUsername when it has no such form.
func ParseRESTUsername(username string) (time.Time, string, error) {
	ts, user, ok := strings.Cut(username, ":")
	if !ok || ts == "" || user == "" || len(ts) > 12 {
		return time.Time{}, "", ErrBadUsername
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || secs < 0 {
		return time.Time{}, "", ErrBadUsername
	}
	return time.Unix(secs, 0), user, nil
}

// longTermKey is MD5(username ":" realm ":" password), the long-term
// credential key of RFC 8489 section 9.2.2.
func longTermKey(username, realm, password string) []byte {
	h := md5.New() //nolint:gosec
	h.Write([]byte(username + ":" + realm + ":" + password))
	return h.Sum(nil)
}

// authFailure names why credentials were refused, for the metric label.
type authFailure string

const (
	authOK          authFailure = ""
	authUnknown     authFailure = "unknown_user"
	authExpired     authFailure = "expired"
	authBadPassword authFailure = "bad_password"
	authWrongRealm  authFailure = "wrong_realm"
)

// authenticator finds the key of a user name: static users first, then
// TURN REST names signed with the shared secret.
type authenticator struct {
	realm  string
	secret string
	static map[string]string
	now    func() time.Time
}

// key returns the long-term key for username, the quota user it stands for
// (the Matrix user of a REST name), or why it is refused.
func (a *authenticator) key(username, realm string) (key []byte, user string, why authFailure) {
	if realm != a.realm {
		return nil, "", authWrongRealm
	}
	if pw, ok := a.static[username]; ok {
		return longTermKey(username, realm, pw), username, authOK
	}
	if a.secret == "" {
		return nil, "", authUnknown
	}
	expiry, user, err := ParseRESTUsername(username)
	if err != nil {
		return nil, "", authUnknown
	}
	if !a.now().Before(expiry) {
		return nil, user, authExpired
	}
	return longTermKey(username, realm, RESTPassword(a.secret, username)), user, authOK
}

// quotaUser is the user a user name counts against: the part after the
// expiry of a REST name, the name itself otherwise.
func (a *authenticator) quotaUser(username string) string {
	if _, ok := a.static[username]; ok {
		return username
	}
	if _, user, err := ParseRESTUsername(username); err == nil {
		return user
	}
	return username
}
