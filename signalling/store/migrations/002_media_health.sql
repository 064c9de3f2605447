-- Per-call media health (issue 6): for each side, the interarrival jitter of
-- the stream the gateway received and the round trip from RTCP, in ms (0 when
-- unknown), and the E-model MOS estimate (0 when not measured); packets of ours
-- the trunk reported lost in RTCP receiver reports.
ALTER TABLE call_records ADD COLUMN matrix_jitter_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN matrix_rtt_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN matrix_mos DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN phone_jitter_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN phone_rtt_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN phone_mos DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN phone_lost_by_peer BIGINT NOT NULL DEFAULT 0;
