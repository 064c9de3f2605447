package store

import (
	"context"
	"database/sql"
	"fmt"
)

// DMRoom returns the DM room created for a phone ghost and a Matrix user;
// ok is false when none was recorded.
func (s *Store) DMRoom(ctx context.Context, ghost, user string) (roomID string, ok bool, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT room_id FROM dm_rooms WHERE ghost = $1 AND user_id = $2`, ghost, user).Scan(&roomID)
	if err == sql.ErrNoRows {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: read DM room of %s and %s: %w", ghost, user, err)
	}
	return roomID, true, nil
}

// SetDMRoom records (or replaces) the DM room of a phone ghost and a Matrix user.
func (s *Store) SetDMRoom(ctx context.Context, ghost, user, roomID string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO dm_rooms (ghost, user_id, room_id, updated_ms) VALUES ($1, $2, $3, $4)
		ON CONFLICT (ghost, user_id) DO UPDATE SET room_id = excluded.room_id, updated_ms = excluded.updated_ms`,
		ghost, user, roomID, s.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("store: record DM room of %s and %s: %w", ghost, user, err)
	}
	return nil
}

// DeleteDMRoom forgets the DM room of a phone ghost and a Matrix user (the
// user left it, or it is gone), so the next call creates a new one.
func (s *Store) DeleteDMRoom(ctx context.Context, ghost, user string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM dm_rooms WHERE ghost = $1 AND user_id = $2`, ghost, user)
	if err != nil {
		return fmt.Errorf("store: forget DM room of %s and %s: %w", ghost, user, err)
	}
	return nil
}
