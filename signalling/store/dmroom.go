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

// RoomGhosts returns the ghosts recorded as joined to a room.
func (s *Store) RoomGhosts(ctx context.Context, roomID string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ghost FROM room_ghosts WHERE room_id = $1 ORDER BY ghost`, roomID)
	if err != nil {
		return nil, fmt.Errorf("store: read ghosts of %s: %w", roomID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, fmt.Errorf("store: read ghosts of %s: %w", roomID, err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// SetRoomGhost records that a ghost joined (joined true) or left a room.
func (s *Store) SetRoomGhost(ctx context.Context, roomID, ghost string, joined bool) error {
	var err error
	if joined {
		_, err = s.db.ExecContext(ctx, `INSERT INTO room_ghosts (room_id, ghost, updated_ms) VALUES ($1, $2, $3)
			ON CONFLICT (room_id, ghost) DO UPDATE SET updated_ms = excluded.updated_ms`, roomID, ghost, s.now().UnixMilli())
	} else {
		_, err = s.db.ExecContext(ctx, `DELETE FROM room_ghosts WHERE room_id = $1 AND ghost = $2`, roomID, ghost)
	}
	if err != nil {
		return fmt.Errorf("store: record ghost %s in %s: %w", ghost, roomID, err)
	}
	return nil
}
