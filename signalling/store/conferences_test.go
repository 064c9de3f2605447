package store

import (
	"context"
	"testing"
	"time"

	"github.com/matrix-gateway/gateway/signalling/conference"
)

func TestConferences(t *testing.T) {
	backends(t, func(t *testing.T, cfg Config) {
		ctx := context.Background()
		s := open(t, cfg)
		if list, err := s.Conferences(ctx); err != nil || len(list) != 0 {
			t.Fatalf("Conferences of a new store = %v, %v", list, err)
		}
		created := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
		must(t, s.SaveConference(ctx, conference.Stored{Room: "!b:hs", PIN: "222222", CreatedBy: "@bob:hs", Created: created}))
		must(t, s.SaveConference(ctx, conference.Stored{Room: "!a:hs", PIN: "111111", CreatedBy: "@alice:hs", Created: created}))
		// Two rooms cannot share a PIN: the PIN is how a dial-in caller names a room.
		if err := s.SaveConference(ctx, conference.Stored{Room: "!c:hs", PIN: "111111", CreatedBy: "@c:hs", Created: created}); err == nil {
			t.Fatal("a second room with the same PIN was accepted")
		}
		list, err := s.Conferences(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("Conferences = %v, %v", list, err)
		}
		if list[0].Room != "!a:hs" || list[0].PIN != "111111" || list[0].CreatedBy != "@alice:hs" || !list[0].Created.Equal(created) {
			t.Errorf("first conference = %+v", list[0])
		}
		must(t, s.DeleteConference(ctx, "!a:hs"))
		if list, err := s.Conferences(ctx); err != nil || len(list) != 1 || list[0].Room != "!b:hs" {
			t.Fatalf("Conferences after delete = %v, %v", list, err)
		}
	})
}
