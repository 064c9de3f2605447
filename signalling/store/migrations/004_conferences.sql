-- Rooms that have a conference call: its PIN (unique: a dial-in caller's PIN
-- names the room) and who created it.
CREATE TABLE conferences (
    room_id    TEXT PRIMARY KEY,
    pin        TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
