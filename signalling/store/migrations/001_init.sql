-- Call records (CDRs) and the DM room of each (phone ghost, Matrix user) pair.
-- Timestamps are milliseconds since the Unix epoch, UTC; NULL when not reached.
CREATE TABLE call_records (
	id                  TEXT PRIMARY KEY,
	direction           TEXT NOT NULL,
	caller_number       TEXT NOT NULL DEFAULT '',
	caller_user         TEXT NOT NULL DEFAULT '',
	callee_number       TEXT NOT NULL DEFAULT '',
	callee_user         TEXT NOT NULL DEFAULT '',
	matrix_room         TEXT NOT NULL DEFAULT '',
	matrix_call_id      TEXT NOT NULL DEFAULT '',
	trunk               TEXT NOT NULL DEFAULT '',
	sip_call_id         TEXT NOT NULL DEFAULT '',
	started_ms          BIGINT NOT NULL,
	answered_ms         BIGINT,
	ended_ms            BIGINT,
	duration_ms         BIGINT NOT NULL DEFAULT 0,
	cause               TEXT NOT NULL DEFAULT '',
	detail              TEXT NOT NULL DEFAULT '',
	ended_by            TEXT NOT NULL DEFAULT '',
	sip_status          INTEGER NOT NULL DEFAULT 0,
	matrix_reason       TEXT NOT NULL DEFAULT '',
	matrix_codec        TEXT NOT NULL DEFAULT '',
	phone_codec         TEXT NOT NULL DEFAULT '',
	matrix_packets_in   BIGINT NOT NULL DEFAULT 0,
	matrix_packets_lost BIGINT NOT NULL DEFAULT 0,
	phone_packets_in    BIGINT NOT NULL DEFAULT 0,
	phone_packets_lost  BIGINT NOT NULL DEFAULT 0,
	state               TEXT NOT NULL,
	last_seen_ms        BIGINT NOT NULL
);
CREATE INDEX call_records_started ON call_records (started_ms);
CREATE INDEX call_records_state ON call_records (state);

CREATE TABLE dm_rooms (
	ghost      TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	room_id    TEXT NOT NULL,
	updated_ms BIGINT NOT NULL,
	PRIMARY KEY (ghost, user_id)
);
