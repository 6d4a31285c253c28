-- Conference rooms (issue 14, section 1): a dial-in number, a PIN (scrypt hash, like voicemail
-- PINs), an optional moderator PIN, a maximum size, optional recording. A room lives on one
-- media service node (`node`, its SIP address host:port; NULL: the proxy's KEMI_MEDIA_SIP);
-- the proxy sends every call for the number there.

CREATE TABLE conference_room (
    number              TEXT PRIMARY KEY CHECK (number ~ '^[0-9]{2,32}$'),
    name                TEXT NOT NULL CHECK (kemi_printable(name, 64) AND length(name) > 0),
    pin_hash            TEXT NOT NULL,            -- scrypt$<salt hex>$<hash hex>
    moderator_pin_hash  TEXT,                     -- NULL: no moderator
    wait_for_moderator  BOOLEAN NOT NULL DEFAULT false,   -- members hear music until a moderator joins
    max_size            INTEGER NOT NULL DEFAULT 10 CHECK (max_size BETWEEN 2 AND 100),
    record              BOOLEAN NOT NULL DEFAULT false,
    node                TEXT CHECK (node IS NULL OR node ~ '^[A-Za-z0-9.:-]{1,100}:[0-9]{1,5}$'),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (moderator_pin_hash IS NOT NULL OR NOT wait_for_moderator)
);

-- A room's recording: one row per session (first participant in to last one out), the mix of
-- everyone, appended every second while it runs (a crash keeps what was recorded).
CREATE TABLE conference_recording (
    id          BIGSERIAL PRIMARY KEY,
    room        TEXT NOT NULL REFERENCES conference_room(number) ON DELETE CASCADE,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    duration_ms INTEGER NOT NULL DEFAULT 0,
    pcm         BYTEA NOT NULL DEFAULT ''::bytea,
    complete    BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX conference_recording_room ON conference_recording (room, started_at);

-- The proxy routes by number and node only.
CREATE TRIGGER conference_room_changed AFTER INSERT OR DELETE OR TRUNCATE ON conference_room
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER conference_room_node_changed AFTER UPDATE OF number, node ON conference_room
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
