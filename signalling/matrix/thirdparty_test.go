package matrix

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"maunium.net/go/mautrix/appservice"
)

const testHSToken = "hs-secret-token"

// ghostPrefix mimics how the lead maps numbers to ghosts: "@_pstn_+<digits>:localhost".
const ghostPrefix = "@_pstn_"

func testThirdParty(t *testing.T) *ThirdParty {
	t.Helper()
	tp, err := NewThirdParty(ThirdPartyConfig{
		HSToken:   testHSToken,
		DefaultCC: "44",
		GhostUserID: func(e164 string) string {
			if strings.HasPrefix(e164, "+999") { // a number with no ghost
				return ""
			}
			return ghostPrefix + e164 + ":localhost"
		},
		NumberFromUserID: func(userID string) (string, bool) {
			rest, ok := strings.CutPrefix(userID, ghostPrefix)
			if !ok {
				return "", false
			}
			num, ok := strings.CutSuffix(rest, ":localhost")
			return num, ok
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

type tpResponse struct {
	status int
	body   []byte
}

func (r tpResponse) errcode(t *testing.T) string {
	t.Helper()
	var e struct {
		ErrCode string `json:"errcode"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e.ErrCode
}

func get(t *testing.T, h http.Handler, target string, auth string) tpResponse {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", target, ct)
	}
	return tpResponse{res.StatusCode, body}
}

const bearer = "Bearer " + testHSToken

func TestThirdPartyProtocol(t *testing.T) {
	tp := testThirdParty(t)
	for _, prefix := range []string{"/_matrix/app/v1", "/_matrix/app/unstable"} {
		for _, proto := range []string{ProtocolPSTN, ProtocolPSTNPrefixed} {
			r := get(t, tp, prefix+"/thirdparty/protocol/"+proto, bearer)
			if r.status != http.StatusOK {
				t.Fatalf("%s %s: status %d %s", prefix, proto, r.status, r.body)
			}
			var p struct {
				UserFields     []string                     `json:"user_fields"`
				LocationFields []string                     `json:"location_fields"`
				Icon           *string                      `json:"icon"`
				FieldTypes     map[string]map[string]string `json:"field_types"`
				Instances      []map[string]json.RawMessage `json:"instances"`
			}
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatal(err)
			}
			if len(p.UserFields) != 1 || p.UserFields[0] != FieldPhone || p.LocationFields == nil || len(p.LocationFields) != 0 || p.Icon == nil {
				t.Errorf("protocol = %s", r.body)
			}
			ft := p.FieldTypes[FieldPhone]
			if ft["regexp"] == "" || ft["placeholder"] == "" {
				t.Errorf("field_types = %v", p.FieldTypes)
			}
			if len(p.Instances) != 1 {
				t.Fatalf("instances = %s", r.body)
			}
			in := p.Instances[0]
			if string(in["desc"]) != `"Telephone network"` || string(in["network_id"]) != `"pstn"` || string(in["fields"]) != `{}` {
				t.Errorf("instance = %s", r.body)
			}
		}
	}
	r := get(t, tp, "/_matrix/app/v1/thirdparty/protocol/irc", bearer)
	if r.status != http.StatusNotFound || r.errcode(t) != "M_NOT_FOUND" {
		t.Errorf("unknown protocol: %d %s", r.status, r.body)
	}
}

func TestThirdPartyUserLookup(t *testing.T) {
	tp := testThirdParty(t)
	for _, tc := range []struct {
		name, proto, rawQuery, want string
	}{
		{"encoded plus", ProtocolPSTN, "m.id.phone=%2B15550100100", "+15550100100"},
		{"prefixed protocol", ProtocolPSTNPrefixed, "m.id.phone=%2B15550100100", "+15550100100"},
		{"double-encoded plus (literal %2B)", ProtocolPSTN, "m.id.phone=%252B15550100100", "+15550100100"},
		{"unencoded plus", ProtocolPSTN, "m.id.phone=+15550100100", "+15550100100"},
		{"unencoded plus with spaces", ProtocolPSTN, "m.id.phone=+44+20+7946+0000", "+442079460000"},
		{"national with default cc", ProtocolPSTN, "m.id.phone=020%207946%200000", "+442079460000"},
		{"00 prefix and other fields", ProtocolPSTNPrefixed, "foo=bar&m.id.phone=0049%2030%20123456&x", "+4930123456"},
		{"encoded key", ProtocolPSTN, "m%2Eid%2Ephone=%2B15550100100", "+15550100100"},
	} {
		r := get(t, tp, "/_matrix/app/v1/thirdparty/user/"+tc.proto+"?"+tc.rawQuery, bearer)
		if r.status != http.StatusOK {
			t.Errorf("%s: status %d %s", tc.name, r.status, r.body)
			continue
		}
		var users []struct {
			UserID   string            `json:"userid"`
			Protocol string            `json:"protocol"`
			Fields   map[string]string `json:"fields"`
		}
		if err := json.Unmarshal(r.body, &users); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(users) != 1 || users[0].UserID != ghostPrefix+tc.want+":localhost" || users[0].Protocol != tc.proto ||
			len(users[0].Fields) != 1 || users[0].Fields[FieldPhone] != tc.want {
			t.Errorf("%s: %s", tc.name, r.body)
		}
	}
}

func TestThirdPartyUserLookupMisses(t *testing.T) {
	tp := testThirdParty(t)
	for _, tc := range []struct{ name, target string }{
		{"junk number", "/_matrix/app/v1/thirdparty/user/m.protocol.pstn?m.id.phone=call-me-maybe"},
		{"too short", "/_matrix/app/v1/thirdparty/user/m.protocol.pstn?m.id.phone=112"},
		{"too long", "/_matrix/app/v1/thirdparty/user/m.protocol.pstn?m.id.phone=%2B1234567890123456"},
		{"bad encoding", "/_matrix/app/v1/thirdparty/user/m.protocol.pstn?m.id.phone=%zz"},
		{"missing field", "/_matrix/app/v1/thirdparty/user/m.protocol.pstn"},
		{"empty field", "/_matrix/app/v1/thirdparty/user/m.protocol.pstn?m.id.phone="},
		{"no ghost for number", "/_matrix/app/v1/thirdparty/user/m.protocol.pstn?m.id.phone=%2B9991234567"},
		{"unknown protocol", "/_matrix/app/v1/thirdparty/user/irc?m.id.phone=%2B15550100100"},
	} {
		r := get(t, tp, tc.target, bearer)
		if r.status != http.StatusNotFound || r.errcode(t) != "M_NOT_FOUND" {
			t.Errorf("%s: %d %s", tc.name, r.status, r.body)
		}
	}
}

func TestThirdPartyAuth(t *testing.T) {
	tp := testThirdParty(t)
	paths := []string{
		"/_matrix/app/v1/thirdparty/protocol/m.protocol.pstn",
		"/_matrix/app/v1/thirdparty/user/m.protocol.pstn?m.id.phone=%2B15550100100",
		"/_matrix/app/v1/thirdparty/user?userid=%40_pstn_%2B15550100100%3Alocalhost",
		"/_matrix/app/v1/thirdparty/location/m.protocol.pstn",
		"/_matrix/app/unstable/thirdparty/location?alias=%23a%3Ab",
	}
	for _, p := range paths {
		for _, tc := range []struct {
			name, auth, query string
			status            int
			errcode           string
		}{
			{"no token", "", "", http.StatusUnauthorized, "M_UNAUTHORIZED"},
			{"wrong token", "Bearer nope", "", http.StatusForbidden, "M_FORBIDDEN"},
			{"token prefix", "Bearer " + testHSToken[:5], "", http.StatusForbidden, "M_FORBIDDEN"},
			{"basic auth", "Basic " + testHSToken, "", http.StatusUnauthorized, "M_UNAUTHORIZED"},
			{"wrong legacy token", "", "access_token=nope", http.StatusForbidden, "M_FORBIDDEN"},
			{"header wins over query", "Bearer nope", "access_token=" + testHSToken, http.StatusForbidden, "M_FORBIDDEN"},
			{"legacy token", "", "access_token=" + testHSToken, http.StatusOK, ""},
			{"lower-case bearer", "bearer " + testHSToken, "", http.StatusOK, ""},
		} {
			target := p
			if tc.query != "" {
				if strings.Contains(target, "?") {
					target += "&" + tc.query
				} else {
					target += "?" + tc.query
				}
			}
			r := get(t, tp, target, tc.auth)
			if r.status != tc.status {
				t.Errorf("%s %s: status %d, want %d (%s)", p, tc.name, r.status, tc.status, r.body)
				continue
			}
			if tc.errcode != "" && r.errcode(t) != tc.errcode {
				t.Errorf("%s %s: body %s", p, tc.name, r.body)
			}
		}
	}
}

func TestThirdPartyReverseLookup(t *testing.T) {
	tp := testThirdParty(t)
	r := get(t, tp, "/_matrix/app/v1/thirdparty/user?userid=%40_pstn_%2B15550100100%3Alocalhost", bearer)
	if r.status != http.StatusOK {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	var users []struct {
		UserID   string            `json:"userid"`
		Protocol string            `json:"protocol"`
		Fields   map[string]string `json:"fields"`
	}
	if err := json.Unmarshal(r.body, &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Protocol != ProtocolPSTN || users[1].Protocol != ProtocolPSTNPrefixed {
		t.Fatalf("users = %s", r.body)
	}
	for _, u := range users {
		if u.UserID != "@_pstn_+15550100100:localhost" || u.Fields[FieldPhone] != "+15550100100" {
			t.Errorf("user = %+v", u)
		}
	}
	for _, target := range []string{
		"/_matrix/app/v1/thirdparty/user?userid=%40alice%3Alocalhost",
		"/_matrix/app/v1/thirdparty/user",
	} {
		r := get(t, tp, target, bearer)
		if r.status != http.StatusNotFound || r.errcode(t) != "M_NOT_FOUND" {
			t.Errorf("%s: %d %s", target, r.status, r.body)
		}
	}
}

func TestThirdPartyLocations(t *testing.T) {
	tp := testThirdParty(t)
	for _, target := range []string{
		"/_matrix/app/v1/thirdparty/location/m.protocol.pstn",
		"/_matrix/app/v1/thirdparty/location/im.vector.protocol.pstn?foo=bar",
		"/_matrix/app/v1/thirdparty/location?alias=%23room%3Alocalhost",
	} {
		r := get(t, tp, target, bearer)
		if r.status != http.StatusOK || string(r.body) != "[]" {
			t.Errorf("%s: %d %s", target, r.status, r.body)
		}
	}
	r := get(t, tp, "/_matrix/app/v1/thirdparty/location/irc", bearer)
	if r.status != http.StatusNotFound || r.errcode(t) != "M_NOT_FOUND" {
		t.Errorf("unknown protocol location: %d %s", r.status, r.body)
	}
}

// TestThirdPartyRegisterOnMautrixRouter registers the routes next to
// mautrix's own appservice routes and checks both keep working.
func TestThirdPartyRegisterOnMautrixRouter(t *testing.T) {
	tp := testThirdParty(t)
	as := appservice.Create()
	tp.Register(as.Router)
	srv := httptest.NewServer(as.Router)
	defer srv.Close()

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/_matrix/app/v1/thirdparty/user/m.protocol.pstn?m.id.phone=%2B15550100100", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", bearer)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"userid":"@_pstn_+15550100100:localhost"`) {
		t.Fatalf("lookup through the mautrix router: %d %s", res.StatusCode, body)
	}
	res, err = srv.Client().Get(srv.URL + "/_matrix/mau/live")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("mautrix route broken: %d", res.StatusCode)
	}
	// Other methods are not served.
	res, err = srv.Client().Post(srv.URL+"/_matrix/app/v1/thirdparty/protocol/m.protocol.pstn", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", res.StatusCode)
	}
}

func TestNewThirdPartyValidates(t *testing.T) {
	ghost := func(string) string { return "" }
	num := func(string) (string, bool) { return "", false }
	for name, cfg := range map[string]ThirdPartyConfig{
		"no token":     {GhostUserID: ghost, NumberFromUserID: num},
		"no funcs":     {HSToken: "x"},
		"bad cc":       {HSToken: "x", GhostUserID: ghost, NumberFromUserID: num, DefaultCC: "0"},
		"bad protocol": {HSToken: "x", GhostUserID: ghost, NumberFromUserID: num, Protocols: []string{"a/b"}},
	} {
		if _, err := NewThirdParty(cfg); err == nil || !strings.HasPrefix(err.Error(), "matrix: ") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	tp, err := NewThirdParty(ThirdPartyConfig{HSToken: "x", GhostUserID: ghost, NumberFromUserID: num, Protocols: []string{"org.example.pstn"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := get(t, tp, "/_matrix/app/v1/thirdparty/protocol/org.example.pstn", "Bearer x"); r.status != http.StatusOK {
		t.Errorf("custom protocol: %d", r.status)
	}
	if r := get(t, tp, "/_matrix/app/v1/thirdparty/protocol/m.protocol.pstn", "Bearer x"); r.status != http.StatusNotFound {
		t.Errorf("default protocol still served: %d", r.status)
	}
}

func TestPhoneParam(t *testing.T) {
	for raw, want := range map[string]string{
		"m.id.phone=%2B1":               "+1",
		"m.id.phone=+1+2":               "+1 2",
		"m.id.phone=1+2":                "1 2",
		"a=b&m.id.phone=%20%2B1":        " +1",
		"m.id.phone":                    "",
		"x=1&m.id.phone=5&m.id.phone=6": "5",
	} {
		got, _ := phoneParam(raw)
		if got != want {
			t.Errorf("phoneParam(%q) = %q, want %q", raw, got, want)
		}
	}
	if _, ok := phoneParam("x=1"); ok {
		t.Error("phoneParam found a missing field")
	}
}
