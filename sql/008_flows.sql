-- 008: call flows (issue 10). A number (DID, service number, group or queue number, SIP
-- number, or a number of its own) may start a flow: a graph of nodes kept as one JSON
-- document, validated by kemi.core.validate before it is written (kemictl flow import).
-- Numbers without a flow keep routing exactly as before (hunt groups, ring-all groups,
-- queues and DIDs need no conversion: a flow node refers to them by number).
CREATE TABLE flow (
    number   TEXT PRIMARY KEY CHECK (number ~ '^[0-9]{2,32}$'),
    name     TEXT NOT NULL DEFAULT '' CHECK (length(name) <= 64),
    doc      JSONB NOT NULL CHECK (jsonb_typeof(doc) = 'object' AND doc ? 'start' AND doc ? 'nodes'),
    version  INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),   -- +1 on every import
    updated  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER flow_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON flow
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
