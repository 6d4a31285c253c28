-- The media service (issue 13): stored audio, voicemail boxes and messages.
-- Audio is kept as 8 kHz mono 16-bit little-endian PCM in bytea, so every node sees it
-- without a shared file system (about 0.96 MB per minute).

CREATE TABLE audio (
    name        TEXT PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    pcm         BYTEA NOT NULL CHECK (length(pcm) % 2 = 0 AND length(pcm) > 0),
    builtin     BOOLEAN NOT NULL DEFAULT false,
    source      TEXT,                       -- what it was made from (file name, generator)
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One box per subscriber (the box number is the SIP number). The routing rule is read by
-- the Kamailio workers (kemi/voicemail_route.py): always, on busy, on no answer after N s.
CREATE TABLE voicemail_box (
    number            TEXT PRIMARY KEY REFERENCES subscriber(number) ON DELETE CASCADE,
    pin_hash          TEXT NOT NULL,        -- scrypt$<salt hex>$<hash hex>
    greeting          BYTEA,                -- recorded by phone (key 7) or `kemictl voicemail greeting`
    always            BOOLEAN NOT NULL DEFAULT false,
    on_busy           BOOLEAN NOT NULL DEFAULT true,
    no_answer_seconds INTEGER CHECK (no_answer_seconds BETWEEN 1 AND 300),   -- NULL: not on no answer
    max_seconds       INTEGER NOT NULL DEFAULT 120 CHECK (max_seconds BETWEEN 5 AND 3600),
    mwi_unsolicited   BOOLEAN NOT NULL DEFAULT false,   -- NOTIFY registered phones without a SUBSCRIBE
    failed_pins       INTEGER NOT NULL DEFAULT 0,
    locked_until      TIMESTAMPTZ
);

CREATE TABLE voicemail_message (
    id          BIGSERIAL PRIMARY KEY,
    box         TEXT NOT NULL REFERENCES voicemail_box(number) ON DELETE CASCADE,
    caller      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    duration_ms INTEGER NOT NULL DEFAULT 0,
    pcm         BYTEA NOT NULL DEFAULT ''::bytea,   -- appended while recording: a partial message survives a crash
    state       TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'saved')),
    complete    BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX voicemail_message_box ON voicemail_message (box, state, created_at);

-- Only the routing rule matters to the proxy: PIN failures and greetings do not reload it.
CREATE TRIGGER voicemail_box_changed AFTER INSERT OR DELETE OR TRUNCATE ON voicemail_box
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER voicemail_box_rule_changed AFTER UPDATE OF always, on_busy, no_answer_seconds ON voicemail_box
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
