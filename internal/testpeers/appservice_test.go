package testpeers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBridge is a minimal appservice standing in for the gateway: it answers the PSTN
// third-party lookups, joins its ghost to rooms it is invited to and rejects calls as busy (m.call.reject).
type fakeBridge struct {
	t       *testing.T
	d       *Dendrite
	asToken string
	ghost   string

	mu      sync.Mutex
	invites []string // call IDs of m.call.invite events received
	lookups []string // phone numbers looked up
}

func (f *fakeBridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/_matrix/app/v1/thirdparty/protocol/"):
		json.NewEncoder(w).Encode(map[string]any{
			"user_fields": []string{"m.id.phone"}, "location_fields": []string{}, "icon": "",
			"field_types": map[string]any{"m.id.phone": map[string]string{"regexp": `\+?[0-9]+`, "placeholder": "+15550100"}},
			"instances":   []map[string]any{{"desc": "Phone", "network_id": "pstn", "fields": map[string]any{}}},
		})
	case strings.HasPrefix(p, "/_matrix/app/v1/thirdparty/user/"):
		num := r.URL.Query().Get("m.id.phone")
		f.mu.Lock()
		f.lookups = append(f.lookups, num)
		f.mu.Unlock()
		json.NewEncoder(w).Encode([]map[string]any{{"userid": f.ghost, "protocol": strings.TrimPrefix(p, "/_matrix/app/v1/thirdparty/user/"), "fields": map[string]string{"m.id.phone": num}}})
	case strings.HasPrefix(p, "/_matrix/app/v1/transactions/"):
		var txn struct {
			Events []struct {
				Type     string          `json:"type"`
				RoomID   string          `json:"room_id"`
				StateKey *string         `json:"state_key"`
				Content  json.RawMessage `json:"content"`
			} `json:"events"`
		}
		json.NewDecoder(r.Body).Decode(&txn)
		for _, ev := range txn.Events {
			switch {
			case ev.Type == "m.room.member" && ev.StateKey != nil && *ev.StateKey == f.ghost && strings.Contains(string(ev.Content), `"invite"`):
				go f.as(http.MethodPost, "/_matrix/client/v3/join/"+url.PathEscape(ev.RoomID), map[string]any{})
			case ev.Type == "m.call.invite":
				var c struct {
					CallID string `json:"call_id"`
				}
				json.Unmarshal(ev.Content, &c)
				f.mu.Lock()
				f.invites = append(f.invites, c.CallID)
				f.mu.Unlock()
				// Before an answer js-sdk ignores m.call.hangup from a party it has not chosen
				// ("our partner is undefined"): a busy callee must send m.call.reject; js-sdk
				// takes the reason from it.
				go f.as(http.MethodPut, fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.call.reject/r%d", url.PathEscape(ev.RoomID), time.Now().UnixNano()),
					map[string]any{"call_id": c.CallID, "party_id": "bridge", "version": "1", "reason": "user_busy"})
			}
		}
		w.Write([]byte("{}"))
	default:
		w.Write([]byte("{}"))
	}
}

// as sends a client-server request as the ghost user (appservice identity assertion).
func (f *fakeBridge) as(method, path string, body any) {
	data, _ := json.Marshal(body)
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	if err := f.d.Do(context.Background(), method, path+sep+"user_id="+url.QueryEscape(f.ghost), f.asToken, data, nil); err != nil {
		f.t.Logf("fake bridge %s %s: %v", method, path, err)
	}
}

// Dendrite loads an appservice registration; the browser's dial-pad flow reaches the appservice:
// lookup, DM with the ghost, m.call.invite, and the bridge's busy m.call.reject comes back as a hangup with reason user_busy.
func TestBrowserDialPadThroughAppservice(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBridge{t: t, asToken: "as_token_test_0123456789"}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dir := t.TempDir()
	reg := filepath.Join(dir, "registration.yaml")
	regYAML := fmt.Sprintf(`id: fakebridge
url: http://%s
as_token: %s
hs_token: hs_token_test_0123456789
sender_localpart: pstnbot
rate_limited: false
protocols: [m.protocol.pstn]
namespaces:
  users:
    - exclusive: true
      regex: '@pstn_.*'
  aliases: []
  rooms: []
`, ln.Addr(), f.asToken)
	if err := os.WriteFile(reg, []byte(regYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	d := StartDendrite(t, DendriteOptions{Registrations: []string{reg}})
	f.d = d
	f.ghost = d.UserID("pstn_4930123")
	// The registration is live: the appservice may register its ghost.
	body, _ := json.Marshal(map[string]any{"type": "m.login.application_service", "username": "pstn_4930123"})
	if err := d.Do(context.Background(), http.MethodPost, "/_matrix/client/v3/register", f.asToken, body, nil); err != nil {
		t.Fatal(err)
	}
	userID, token := d.RegisterUser(t, "alice", "alicepassword")
	b := StartBrowser(t, BrowserOptions{Homeserver: d.URL, UserID: userID, AccessToken: token, Number: "+4930123", Timeout: 60 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lookup, err := b.WaitEvent(ctx, "lookup")
	if err != nil {
		t.Fatal(err)
	}
	if lookup.UserID != f.ghost || lookup.Protocol != "m.protocol.pstn" {
		t.Fatalf("lookup %+v, want %s via m.protocol.pstn", lookup, f.ghost)
	}
	if _, err := b.WaitEvent(ctx, "joined"); err != nil {
		t.Fatal(err)
	}
	hangup, err := b.WaitEvent(ctx, "hangup")
	if err != nil {
		t.Fatal(err)
	}
	if hangup.Reason != "user_busy" || hangup.Party != "remote" {
		t.Fatalf("hangup %+v, want user_busy from remote", hangup)
	}
	if evs := b.AllEvents(); len(evs) > 0 {
		for _, ev := range evs {
			t.Logf("%.3f %s %s %s", ev.T-evs[0].T, ev.Event, ev.Stage, ev.State)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.invites) != 1 || len(f.lookups) != 1 || f.lookups[0] != "+4930123" {
		t.Fatalf("bridge saw invites %v lookups %v", f.invites, f.lookups)
	}
}
