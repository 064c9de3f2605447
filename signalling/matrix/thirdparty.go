package matrix

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/matrix-gateway/gateway/signalling"
)

// Third-party lookups let Element's dial pad find the ghost user for a phone
// number: the client asks its homeserver GET /thirdparty/user/<protocol>?
// m.id.phone=<number>, the homeserver forwards it to the appservice that
// lists the protocol in its registration ("protocols:"), and the client
// opens a DM with the returned user and calls it. Spec: Application Service
// API, "Third-party networks" (https://spec.matrix.org/latest/application-service-api/#third-party-networks).

// Protocol IDs Element looks for (matrix-react-sdk LegacyCallHandler:
// PROTOCOL_PSTN and PROTOCOL_PSTN_PREFIXED).
const (
	ProtocolPSTN         = "m.protocol.pstn"
	ProtocolPSTNPrefixed = "im.vector.protocol.pstn"
)

// FieldPhone is the third-party user field carrying the phone number.
const FieldPhone = "m.id.phone"

// Path prefixes of the homeserver -> appservice API. "unstable" is what
// homeservers with legacy paths enabled use (Dendrite legacy_paths, old
// Synapse).
var thirdPartyPrefixes = [...]string{"/_matrix/app/v1", "/_matrix/app/unstable"}

// ThirdPartyConfig configures the third-party lookup endpoints.
type ThirdPartyConfig struct {
	// HSToken is the registration's hs_token the homeserver authenticates
	// with (required).
	HSToken string
	// DefaultCC is the country code for numbers dialled in national form
	// (signalling.Normalize); empty accepts international numbers only.
	DefaultCC string
	// GhostUserID returns the Matrix user ID of the ghost that stands for a
	// normalised E.164 number, or "" if the number has none (required).
	GhostUserID func(e164 string) string
	// NumberFromUserID returns the E.164 number a ghost user stands for
	// (required).
	NumberFromUserID func(userID string) (string, bool)
	// Protocols lists the protocol IDs served; default ProtocolPSTN and
	// ProtocolPSTNPrefixed. Each must also be in the registration's
	// "protocols" list.
	Protocols []string
	// Description names the network instance in clients; default
	// "Telephone network".
	Description string
	// Placeholder is the example number clients show; default
	// "+1 555 010 0100".
	Placeholder string
}

// ThirdParty serves the appservice third-party lookup endpoints. It is an
// http.Handler for those paths and can register them on another mux
// (mautrix's AppService.Router). It keeps no state besides its config and
// is safe for concurrent use.
type ThirdParty struct {
	cfg      ThirdPartyConfig
	protocol []byte // the protocol metadata response, the same for every protocol
	mux      *http.ServeMux
}

// NewThirdParty validates cfg and builds the endpoints.
func NewThirdParty(cfg ThirdPartyConfig) (*ThirdParty, error) {
	var errs []error
	if cfg.HSToken == "" {
		errs = append(errs, errors.New("matrix: third-party lookups: HSToken is required"))
	}
	if cfg.GhostUserID == nil || cfg.NumberFromUserID == nil {
		errs = append(errs, errors.New("matrix: third-party lookups: GhostUserID and NumberFromUserID are required"))
	}
	if err := signalling.CheckCountryCode(cfg.DefaultCC); err != nil {
		errs = append(errs, errors.New("matrix: third-party lookups: "+err.Error()))
	}
	if len(cfg.Protocols) == 0 {
		cfg.Protocols = []string{ProtocolPSTN, ProtocolPSTNPrefixed}
	} else {
		cfg.Protocols = slices.Clone(cfg.Protocols)
	}
	for _, p := range cfg.Protocols {
		if p == "" || strings.ContainsAny(p, "/?# ") {
			errs = append(errs, errors.New("matrix: third-party lookups: bad protocol ID "+quoteString(p)))
		}
	}
	if cfg.Description == "" {
		cfg.Description = "Telephone network"
	}
	if cfg.Placeholder == "" {
		cfg.Placeholder = "+1 555 010 0100"
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	tp := &ThirdParty{cfg: cfg}
	var err error
	tp.protocol, err = json.Marshal(protocolResponse{
		UserFields:     []string{FieldPhone},
		LocationFields: []string{},
		Icon:           "",
		FieldTypes: map[string]fieldType{FieldPhone: {
			// What a user may type; Normalize decides for real.
			Regexp:      `^(tel:)?\+?[0-9][0-9 ().\-/]{2,40}$`,
			Placeholder: cfg.Placeholder,
		}},
		// Dendrite drops a protocol without instances: always list one.
		Instances: []protocolInstance{{
			Desc:      cfg.Description,
			Icon:      "",
			Fields:    map[string]string{},
			NetworkID: "pstn",
		}},
	})
	if err != nil {
		return nil, err
	}
	tp.mux = http.NewServeMux()
	tp.Register(tp.mux)
	return tp, nil
}

// Register adds the third-party routes (v1 and unstable prefixes) to mux.
// It panics if mux already has conflicting patterns, like ServeMux.HandleFunc.
func (tp *ThirdParty) Register(mux *http.ServeMux) {
	for _, p := range thirdPartyPrefixes {
		mux.HandleFunc("GET "+p+"/thirdparty/protocol/{protocol}", tp.getProtocol)
		mux.HandleFunc("GET "+p+"/thirdparty/user/{protocol}", tp.getUser)
		mux.HandleFunc("GET "+p+"/thirdparty/user", tp.getUserByID)
		mux.HandleFunc("GET "+p+"/thirdparty/location/{protocol}", tp.getLocation)
		mux.HandleFunc("GET "+p+"/thirdparty/location", tp.getLocationByAlias)
	}
}

// ServeHTTP serves the third-party routes; other paths get 404.
func (tp *ThirdParty) ServeHTTP(w http.ResponseWriter, r *http.Request) { tp.mux.ServeHTTP(w, r) }

// Wire types (spec: definitions/protocol.yaml, protocol_instance.yaml,
// user.yaml).
type (
	protocolResponse struct {
		UserFields     []string             `json:"user_fields"`
		LocationFields []string             `json:"location_fields"`
		Icon           string               `json:"icon"`
		FieldTypes     map[string]fieldType `json:"field_types"`
		Instances      []protocolInstance   `json:"instances"`
	}
	fieldType struct {
		Regexp      string `json:"regexp"`
		Placeholder string `json:"placeholder"`
	}
	protocolInstance struct {
		Desc      string            `json:"desc"`
		Icon      string            `json:"icon"`
		Fields    map[string]string `json:"fields"`
		NetworkID string            `json:"network_id"`
	}
	thirdPartyUser struct {
		UserID   string     `json:"userid"`
		Protocol string     `json:"protocol"`
		Fields   userFields `json:"fields"`
	}
	userFields struct {
		Phone string `json:"m.id.phone"`
	}
)

// authorized checks the homeserver's hs_token: "Authorization: Bearer" or,
// for homeservers using legacy auth, the access_token query parameter
// (spec: "Authorization", MSC2832). It writes 401 M_UNAUTHORIZED when no
// token is given and 403 M_FORBIDDEN for a wrong one.
func (tp *ThirdParty) authorized(w http.ResponseWriter, r *http.Request) bool {
	var token string
	if h := r.Header.Get("Authorization"); h != "" {
		const prefix = "Bearer "
		if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
			writeError(w, http.StatusUnauthorized, "M_UNAUTHORIZED", "expected a Bearer token")
			return false
		}
		token = strings.TrimSpace(h[len(prefix):])
	} else {
		token = r.URL.Query().Get("access_token")
	}
	if token == "" {
		writeError(w, http.StatusUnauthorized, "M_UNAUTHORIZED", "missing hs_token")
		return false
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(tp.cfg.HSToken)) != 1 {
		writeError(w, http.StatusForbidden, "M_FORBIDDEN", "invalid hs_token")
		return false
	}
	return true
}

func (tp *ThirdParty) knownProtocol(w http.ResponseWriter, r *http.Request) (string, bool) {
	p := r.PathValue("protocol")
	if !slices.Contains(tp.cfg.Protocols, p) {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "unknown protocol")
		return "", false
	}
	return p, true
}

// getProtocol serves GET /thirdparty/protocol/{protocol} (spec:
// getProtocolMetadata).
func (tp *ThirdParty) getProtocol(w http.ResponseWriter, r *http.Request) {
	if !tp.authorized(w, r) {
		return
	}
	if _, ok := tp.knownProtocol(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, tp.protocol)
}

// getUser serves GET /thirdparty/user/{protocol}?m.id.phone=... (spec:
// queryUserByProtocol). A number that cannot be normalised, or has no
// ghost, is "no users found": 404 M_NOT_FOUND, the only non-auth error
// status the spec gives.
func (tp *ThirdParty) getUser(w http.ResponseWriter, r *http.Request) {
	if !tp.authorized(w, r) {
		return
	}
	proto, ok := tp.knownProtocol(w, r)
	if !ok {
		return
	}
	raw, ok := phoneParam(r.URL.RawQuery)
	if !ok || raw == "" {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "no "+FieldPhone+" given")
		return
	}
	e164, err := signalling.Normalize(raw, tp.cfg.DefaultCC)
	if err != nil {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", err.Error())
		return
	}
	ghost := tp.cfg.GhostUserID(e164)
	if ghost == "" {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "no user for "+e164)
		return
	}
	body, err := json.Marshal([]thirdPartyUser{{UserID: ghost, Protocol: proto, Fields: userFields{Phone: e164}}})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "encoding failed")
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// getUserByID serves GET /thirdparty/user?userid=... (spec: queryUserByID):
// the number a ghost stands for, once per served protocol.
func (tp *ThirdParty) getUserByID(w http.ResponseWriter, r *http.Request) {
	if !tp.authorized(w, r) {
		return
	}
	userID := r.URL.Query().Get("userid")
	if userID == "" {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "no userid given")
		return
	}
	number, ok := tp.cfg.NumberFromUserID(userID)
	if !ok || number == "" {
		writeError(w, http.StatusNotFound, "M_NOT_FOUND", "not a phone number user")
		return
	}
	users := make([]thirdPartyUser, 0, len(tp.cfg.Protocols))
	for _, p := range tp.cfg.Protocols {
		users = append(users, thirdPartyUser{UserID: userID, Protocol: p, Fields: userFields{Phone: number}})
	}
	body, err := json.Marshal(users)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "encoding failed")
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// getLocation serves GET /thirdparty/location/{protocol}: phone numbers
// have no portal rooms, so the list is empty (200 [] rather than 404:
// homeservers decode the body as a list and log an error otherwise).
func (tp *ThirdParty) getLocation(w http.ResponseWriter, r *http.Request) {
	if !tp.authorized(w, r) {
		return
	}
	if _, ok := tp.knownProtocol(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, []byte("[]"))
}

// getLocationByAlias serves GET /thirdparty/location?alias=...: always empty.
func (tp *ThirdParty) getLocationByAlias(w http.ResponseWriter, r *http.Request) {
	if !tp.authorized(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, []byte("[]"))
}

// phoneParam returns the m.id.phone query value. A "+" a client forgot to
// percent-encode arrives as a space after query decoding; it is restored
// from the raw query so "+44..." is not read as "44...".
func phoneParam(rawQuery string) (string, bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil || key != FieldPhone {
			continue
		}
		plus := strings.HasPrefix(v, "+")
		val, err := url.QueryUnescape(v)
		if err != nil {
			return "", false
		}
		if plus {
			val = "+" + val[1:]
		}
		return val, true
	}
	return "", false
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, errcode, msg string) {
	body, _ := json.Marshal(struct {
		ErrCode string `json:"errcode"`
		Error   string `json:"error"`
	}{errcode, msg})
	writeJSON(w, status, body)
}

func quoteString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
