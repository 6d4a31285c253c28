-- Conference launcher with escalation (seed 003, issue 14 section 4).
-- A launch calls its contacts into a conference room following an alert scheme (data, see
-- kemi/core/launcher.py); the media service's launcher (media/launcher.py) claims pending
-- launches, places the calls, sends the SMS and emails and records who joined, when and how.

CREATE TABLE launch_scheme (
    name        TEXT PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,32}$'),
    body        JSONB NOT NULL,                 -- Scheme.to_dict(), validated by kemictl
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE launch (
    id              BIGSERIAL PRIMARY KEY,
    room            TEXT NOT NULL REFERENCES conference_room(number) ON DELETE CASCADE,
    pin             TEXT NOT NULL CHECK (pin ~ '^[0-9]{4,8}$'),   -- sent by SMS/email, so kept in clear
    temporary_room  BOOLEAN NOT NULL DEFAULT false,
    title           TEXT NOT NULL DEFAULT '' CHECK (kemi_printable(title, 64)),
    welcome         TEXT NOT NULL DEFAULT '' CHECK (welcome ~ '^[A-Za-z0-9_.-]{0,64}$'),
    record          BOOLEAN NOT NULL DEFAULT false,
    dial_in         TEXT NOT NULL CHECK (dial_in ~ '^\+?[0-9]{2,32}$'),
    scheme          JSONB NOT NULL,                 -- a copy: later scheme edits do not change it
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'running', 'finished', 'cancelled')),
    source          TEXT NOT NULL DEFAULT 'kemictl' CHECK (source IN ('kemictl', 'http')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    outcome         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX launch_pending ON launch (id) WHERE state IN ('pending', 'running');

CREATE TABLE launch_contact (
    launch      BIGINT NOT NULL REFERENCES launch(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL CHECK (idx BETWEEN 0 AND 49),
    name        TEXT NOT NULL CHECK (kemi_printable(name, 64) AND length(name) > 0),
    work        TEXT NOT NULL DEFAULT '' CHECK (work ~ '^([0-9]{2,32})?$'),
    home        TEXT NOT NULL DEFAULT '' CHECK (home ~ '^([0-9]{2,32})?$'),
    mobile      TEXT NOT NULL DEFAULT '' CHECK (mobile ~ '^([0-9]{2,32})?$'),
    email       TEXT NOT NULL DEFAULT '' CHECK (length(email) <= 254),
    joined_at   TIMESTAMPTZ,
    joined_how  TEXT CHECK (joined_how IN ('work', 'home', 'mobile', 'dial-in')),
    PRIMARY KEY (launch, idx)
);

-- What happened, in order: calls placed and their outcome, joins, SMS and emails (each try).
CREATE TABLE launch_event (
    id          BIGSERIAL PRIMARY KEY,
    launch      BIGINT NOT NULL REFERENCES launch(id) ON DELETE CASCADE,
    idx         INTEGER,                        -- the contact, NULL for the launch itself
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    kind        TEXT NOT NULL,                  -- call, joined, sms, email, launch
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX launch_event_launch ON launch_event (launch, id);
