-- Which of the gateway's ghost users are joined to which rooms, so that a
-- call invite without "invitee" finds its callee after a restart.
CREATE TABLE room_ghosts (
    room_id    TEXT NOT NULL,
    ghost      TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (room_id, ghost)
);
