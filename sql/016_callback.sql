-- 016: the callback extension (seed 002, issue 14 section 3). An account is reached by its
-- callback number (a DID's target); the proxy reads number -> caller-ID subscriber from the
-- directory snapshot, the media service reads the rest when a call arrives.

CREATE TABLE callback_account (
    number           TEXT PRIMARY KEY CHECK (number ~ '^[0-9]{2,32}$'),
    caller_id_of     TEXT REFERENCES subscriber(number) ON DELETE SET NULL,  -- whose caller-ID policy outgoing legs use
    mode             TEXT NOT NULL DEFAULT 'authorized' CHECK (mode IN ('authorized', 'caller', 'fixed')),
    fixed_number     TEXT CHECK (fixed_number ~ '^[0-9]{2,32}$'),
    trigger_seconds  INTEGER NOT NULL DEFAULT 5 CHECK (trigger_seconds BETWEEN 1 AND 60),
    dial_seconds     INTEGER NOT NULL DEFAULT 20 CHECK (dial_seconds BETWEEN 3 AND 120),
    password_hash    TEXT,                                   -- scrypt$salt$hash; NULL: no password
    per_id_password  BOOLEAN NOT NULL DEFAULT false,
    credit_query     BOOLEAN NOT NULL DEFAULT false,
    credit           NUMERIC(14, 4) NOT NULL DEFAULT 0,
    out_sound        TEXT NOT NULL DEFAULT 'cb-credit-out' CHECK (out_sound ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    failed_passwords INTEGER NOT NULL DEFAULT 0,
    locked_until     TIMESTAMPTZ,
    CHECK (mode <> 'fixed' OR fixed_number IS NOT NULL)
);

CREATE TABLE callback_caller (
    account       TEXT NOT NULL REFERENCES callback_account(number) ON DELETE CASCADE,
    caller        TEXT NOT NULL CHECK (caller ~ '^[0-9]{2,32}$'),
    password_hash TEXT,                                      -- per authorised caller ID
    PRIMARY KEY (account, caller)
);

-- Per-minute rates by destination prefix (longest prefix wins); no rate: not allowed.
CREATE TABLE callback_rate (
    prefix     TEXT PRIMARY KEY CHECK (prefix ~ '^[0-9]{1,24}$'),
    per_minute NUMERIC(10, 4) NOT NULL CHECK (per_minute >= 0)
);

CREATE TABLE callback_charge (
    id        BIGSERIAL PRIMARY KEY,
    account   TEXT NOT NULL REFERENCES callback_account(number) ON DELETE CASCADE,
    ts        TIMESTAMPTZ NOT NULL DEFAULT now(),
    call_id   TEXT NOT NULL,
    dialled   TEXT NOT NULL,
    seconds   NUMERIC(10, 3) NOT NULL,
    cost      NUMERIC(14, 4) NOT NULL,
    kind      TEXT NOT NULL DEFAULT 'call' CHECK (kind IN ('call', 'top-up'))
);
CREATE INDEX callback_charge_account ON callback_charge (account, ts);

-- Only the number and its caller-ID subscriber matter to the proxy.
CREATE TRIGGER callback_account_changed AFTER INSERT OR DELETE OR TRUNCATE ON callback_account
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER callback_account_route_changed AFTER UPDATE OF number, caller_id_of ON callback_account
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
