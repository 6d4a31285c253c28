-- 002: SIP trunks, DIDs, outbound routes and caller-ID management (seeds 001 and 002).

-- A carrier trunk. Requests from its addresses are accepted without digest (recognised by
-- source address). trusted: it may receive and send P-Asserted-Identity. send_pai: add
-- P-Asserted-Identity and P-Preferred-Identity to calls sent to it (kept only if trusted).
CREATE TABLE trunk (
    id                SERIAL PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    transport         TEXT NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp')),
    trusted           BOOLEAN NOT NULL DEFAULT FALSE,
    send_pai          BOOLEAN NOT NULL DEFAULT FALSE,
    default_caller_id TEXT CHECK (default_caller_id ~ '^[0-9]{2,32}$'),
    active            BOOLEAN NOT NULL DEFAULT TRUE
);

-- Where a trunk is: calls go to the addresses in order (failover), and requests from any of
-- them (from any port when port is NULL) are the trunk's.
CREATE TABLE trunk_address (
    trunk_id  INTEGER NOT NULL REFERENCES trunk(id) ON DELETE CASCADE,
    address   INET NOT NULL,
    port      INTEGER CHECK (port BETWEEN 1 AND 65535),
    position  INTEGER NOT NULL,
    PRIMARY KEY (trunk_id, position)
);
CREATE UNIQUE INDEX trunk_address_unique ON trunk_address (address, coalesce(port, 0));

-- Outbound routing: the longest matching prefix wins; its trunks are tried by priority,
-- then the trunks of shorter matching prefixes.
CREATE TABLE trunk_route (
    prefix    TEXT NOT NULL CHECK (prefix ~ '^[0-9]{0,32}$'),
    trunk_id  INTEGER NOT NULL REFERENCES trunk(id) ON DELETE CASCADE,
    priority  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (prefix, trunk_id)
);

-- A public number a trunk carries. Inbound calls to it go to target (a dial string: a SIP
-- number, service number, group or queue number). The caller's number gets caller_prefix /
-- caller_suffix and the display name display_tag, so agents see the line the call came in on.
CREATE TABLE did (
    number        TEXT PRIMARY KEY CHECK (number ~ '^[0-9]{2,32}$'),
    trunk_id      INTEGER NOT NULL REFERENCES trunk(id) ON DELETE CASCADE,
    target        TEXT NOT NULL CHECK (target ~ '^[0-9]{2,32}T?$'),
    caller_prefix TEXT NOT NULL DEFAULT '' CHECK (caller_prefix ~ '^[0-9+*#]{0,16}$'),
    caller_suffix TEXT NOT NULL DEFAULT '' CHECK (caller_suffix ~ '^[0-9*#]{0,16}$'),
    display_tag   TEXT CHECK (length(display_tag) <= 32)
);

-- Caller-ID management per subscriber (seed 002): the ordered caller-ID list (cN picks the
-- N-th; on a trunk call one of those the trunk carries is sent at random), a default, a
-- name for public calls, anonymity and PAI/PPI.
CREATE TABLE caller_id (
    subscriber TEXT NOT NULL REFERENCES subscriber(number) ON DELETE CASCADE,
    position   INTEGER NOT NULL CHECK (position BETWEEN 1 AND 99),
    number     TEXT NOT NULL CHECK (number ~ '^[0-9]{2,32}$'),
    PRIMARY KEY (subscriber, position),
    UNIQUE (subscriber, number)
);
ALTER TABLE subscriber
    ADD COLUMN public_name       TEXT CHECK (length(public_name) <= 64),
    ADD COLUMN default_caller_id TEXT CHECK (default_caller_id ~ '^[0-9]{2,32}$'),
    ADD COLUMN hide_caller_id    BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN send_pai          BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TRIGGER trunk_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trunk
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER trunk_address_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trunk_address
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER trunk_route_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trunk_route
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER did_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON did
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER caller_id_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON caller_id
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
