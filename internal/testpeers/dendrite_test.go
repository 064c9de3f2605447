package testpeers

import (
	"context"
	"strings"
	"testing"
)

func TestDendriteRegisterAndWhoami(t *testing.T) {
	d := StartDendrite(t, DendriteOptions{TURN: &DendriteTURN{
		URIs:         []string{"turn:127.0.0.1:3478?transport=udp"},
		SharedSecret: "testsecret",
	}})
	userID, token := d.RegisterUser(t, "alice", "alicepassword")
	if userID != d.UserID("alice") {
		t.Fatalf("user ID %q, want %q", userID, d.UserID("alice"))
	}
	var who struct {
		UserID string `json:"user_id"`
	}
	if err := d.Do(context.Background(), "GET", "/_matrix/client/v3/account/whoami", token, nil, &who); err != nil {
		t.Fatal(err)
	}
	if who.UserID != userID {
		t.Fatalf("whoami %q, want %q", who.UserID, userID)
	}
	// The TURN settings reached the server: it hands out REST credentials for this user.
	var turn struct {
		Username string   `json:"username"`
		Password string   `json:"password"`
		URIs     []string `json:"uris"`
	}
	if err := d.Do(context.Background(), "GET", "/_matrix/client/v3/voip/turnServer", token, nil, &turn); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(turn.Username, ":"+userID) || turn.Password == "" || len(turn.URIs) != 1 {
		t.Fatalf("turnServer answer %+v", turn)
	}
	// Short passwords are refused: the helper reports the server's error.
	if _, err := d.Register(context.Background(), "bob", "short"); err == nil {
		t.Fatal("register with a 5-character password succeeded")
	}
}
