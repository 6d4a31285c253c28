-- 005: supervisors (seed 001 spy function). A supervisor of a hunt group, ring-all group or
-- queue may listen in (4#) on the calls of that group's members/agents.
CREATE TABLE supervisor (
    number     TEXT NOT NULL REFERENCES subscriber(number) ON DELETE CASCADE,
    group_kind TEXT NOT NULL CHECK (group_kind IN ('hunt', 'ringall', 'queue')),
    group_name TEXT NOT NULL,
    PRIMARY KEY (number, group_kind, group_name)
);
CREATE TRIGGER supervisor_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON supervisor
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
