package store

import (
	"context"
	"fmt"
	"time"

	"github.com/matrix-gateway/gateway/signalling/conference"
)

var _ conference.Store = (*Store)(nil)

// SaveConference records (or replaces) a room's conference.
func (s *Store) SaveConference(ctx context.Context, c conference.Stored) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO conferences (room_id, pin, created_by, created_ms) VALUES ($1, $2, $3, $4)
		ON CONFLICT (room_id) DO UPDATE SET pin = excluded.pin, created_by = excluded.created_by, created_ms = excluded.created_ms`,
		c.Room, c.PIN, c.CreatedBy, c.Created.UnixMilli())
	if err != nil {
		return fmt.Errorf("store: record the conference of %s: %w", c.Room, err)
	}
	return nil
}

// DeleteConference forgets a room's conference.
func (s *Store) DeleteConference(ctx context.Context, room string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM conferences WHERE room_id = $1`, room); err != nil {
		return fmt.Errorf("store: forget the conference of %s: %w", room, err)
	}
	return nil
}

// Conferences returns every recorded conference room.
func (s *Store) Conferences(ctx context.Context) ([]conference.Stored, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT room_id, pin, created_by, created_ms FROM conferences ORDER BY room_id`)
	if err != nil {
		return nil, fmt.Errorf("store: read conferences: %w", err)
	}
	defer rows.Close()
	var out []conference.Stored
	for rows.Next() {
		var c conference.Stored
		var ms int64
		if err := rows.Scan(&c.Room, &c.PIN, &c.CreatedBy, &ms); err != nil {
			return nil, fmt.Errorf("store: read conferences: %w", err)
		}
		c.Created = time.UnixMilli(ms).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
