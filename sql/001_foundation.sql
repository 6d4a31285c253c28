-- 001: Kamailio's own tables (usrloc persistence) and the subscriber/hunt-group model.
-- Migrations are forward-only; tools/migrate.py applies each file once, in one transaction.

-- Kamailio checks table versions at start-up (usrloc: location v9).
CREATE TABLE version (
    id SERIAL PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);
INSERT INTO version (table_name, table_version) VALUES ('version', 1);

-- usrloc's table, as shipped with Kamailio 5.6 (db_mode=1 writes contacts through, so
-- registrations survive a restart).
CREATE TABLE location (
    id SERIAL PRIMARY KEY NOT NULL,
    ruid VARCHAR(64) DEFAULT '' NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT NULL,
    contact VARCHAR(512) DEFAULT '' NOT NULL,
    received VARCHAR(128) DEFAULT NULL,
    path VARCHAR(512) DEFAULT NULL,
    expires TIMESTAMP WITHOUT TIME ZONE DEFAULT '2030-05-28 21:32:15' NOT NULL,
    q REAL DEFAULT 1.0 NOT NULL,
    callid VARCHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    cseq INTEGER DEFAULT 1 NOT NULL,
    last_modified TIMESTAMP WITHOUT TIME ZONE DEFAULT '2000-01-01 00:00:01' NOT NULL,
    flags INTEGER DEFAULT 0 NOT NULL,
    cflags INTEGER DEFAULT 0 NOT NULL,
    user_agent VARCHAR(255) DEFAULT '' NOT NULL,
    socket VARCHAR(64) DEFAULT NULL,
    methods INTEGER DEFAULT NULL,
    instance VARCHAR(255) DEFAULT NULL,
    reg_id INTEGER DEFAULT 0 NOT NULL,
    server_id INTEGER DEFAULT 0 NOT NULL,
    connection_id INTEGER DEFAULT 0 NOT NULL,
    keepalive INTEGER DEFAULT 0 NOT NULL,
    partition INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT location_ruid_idx UNIQUE (ruid)
);
CREATE INDEX location_account_contact_idx ON location (username, domain, contact);
CREATE INDEX location_expires_idx ON location (expires);
CREATE INDEX location_connection_idx ON location (server_id, connection_id);
INSERT INTO version (table_name, table_version) VALUES ('location', 9);

-- A SIP number (line) that phones register and call as. Passwords are never stored:
-- ha1 = md5(number:realm:password), the digest secret Kamailio's auth module checks.
CREATE TABLE subscriber (
    number       TEXT PRIMARY KEY CHECK (number ~ '^[0-9]{2,32}$'),
    ha1          CHAR(32) NOT NULL CHECK (ha1 ~ '^[0-9a-f]{32}$'),
    display_name TEXT,
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A sequential hunt group (seed 000): members chained by next numbers, entered through
-- service numbers. ring_timeout is the group's default per member (NULL: global default).
CREATE TABLE hunt_group (
    id           SERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    ring_timeout INTEGER CHECK (ring_timeout BETWEEN 1 AND 600)
);

-- A member belongs to one group; next_number NULL means the chain ends here (0000).
-- The next number may be any subscriber, also one outside the group (the chain goes on there).
CREATE TABLE hunt_member (
    number       TEXT PRIMARY KEY REFERENCES subscriber(number) ON DELETE RESTRICT,
    group_id     INTEGER NOT NULL REFERENCES hunt_group(id) ON DELETE CASCADE,
    next_number  TEXT REFERENCES subscriber(number) ON DELETE RESTRICT,
    ring_timeout INTEGER CHECK (ring_timeout BETWEEN 1 AND 600),
    position     INTEGER NOT NULL,
    CHECK (next_number IS DISTINCT FROM number)
);
CREATE INDEX hunt_member_group_idx ON hunt_member (group_id, position);

CREATE TABLE service_number (
    number       TEXT PRIMARY KEY CHECK (number ~ '^[0-9]{2,32}$'),
    group_id     INTEGER NOT NULL REFERENCES hunt_group(id) ON DELETE CASCADE,
    start_number TEXT NOT NULL REFERENCES hunt_member(number) ON DELETE CASCADE,
    position     INTEGER NOT NULL
);
CREATE INDEX service_number_group_idx ON service_number (group_id, position);

-- Every provisioning change tells the Kamailio workers to reload their cached snapshot
-- on their next call (LISTEN kemi_config).
CREATE FUNCTION kemi_notify_config() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kemi_config', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER subscriber_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON subscriber
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER hunt_group_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hunt_group
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER hunt_member_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hunt_member
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER service_number_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON service_number
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
