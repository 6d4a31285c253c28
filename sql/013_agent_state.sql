-- 013: agent state is runtime state (issue 11). Kamailio keeps every membership's state in
-- shared memory (htable agentst); PostgreSQL keeps it across restarts. A state change is
-- no provisioning change any more: it must not make the directory loader reload.

-- When the persisted state was last set (unix time, seconds): the agent shipper applies a
-- phone's change only if it is newer than what kemictl wrote meanwhile (last writer wins).
ALTER TABLE queue_agent ADD COLUMN state_at DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE ringall_member ADD COLUMN state_at DOUBLE PRECISION NOT NULL DEFAULT 0;

-- Reload the directory on membership changes only, not on state changes.
DROP TRIGGER queue_agent_changed ON queue_agent;
CREATE TRIGGER queue_agent_changed AFTER INSERT OR DELETE OR TRUNCATE
    OR UPDATE OF queue_id, number, tier, position ON queue_agent
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
DROP TRIGGER ringall_member_changed ON ringall_member;
CREATE TRIGGER ringall_member_changed AFTER INSERT OR DELETE OR TRUNCATE
    OR UPDATE OF group_id, number, position ON ringall_member
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();

-- What Kamailio's htable module loads into agentst at start (columns it expects).
CREATE VIEW agent_state_ht AS
    SELECT 'q:' || q.number || ':' || a.number AS key_name, 0 AS key_type, 0 AS value_type,
           CASE WHEN a.logged_in THEN 'in' WHEN a.paused_reason IS NULL THEN 'out'
                ELSE 'p:' || a.paused_reason END AS key_value, 0 AS expires
      FROM queue_agent a JOIN queue q ON q.id = a.queue_id
    UNION ALL
    SELECT 'g:' || g.number || ':' || m.number, 0, 0,
           CASE WHEN m.logged_in THEN 'in' WHEN m.paused_reason IS NULL THEN 'out'
                ELSE 'p:' || m.paused_reason END, 0
      FROM ringall_member m JOIN ringall_group g ON g.id = m.group_id;

-- Queue statistics per agent (htable agentstat), counted by the workers and shipped here with
-- the state changes; loaded back into agentstat at start (view agent_stat_ht).
CREATE TABLE agent_stat (
    queue_number TEXT NOT NULL,
    number       TEXT NOT NULL,
    answered     INTEGER NOT NULL DEFAULT 0,
    talk_seconds BIGINT NOT NULL DEFAULT 0,
    last_end     BIGINT NOT NULL DEFAULT 0,    -- unix time the last answered call ended
    unanswered   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue_number, number)
);

CREATE VIEW agent_stat_ht AS
    SELECT 'ans:' || queue_number || ':' || number AS key_name, 0 AS key_type, 1 AS value_type,
           answered::text AS key_value, 0 AS expires FROM agent_stat
    UNION ALL SELECT 'talk:' || queue_number || ':' || number, 0, 1, talk_seconds::text, 0 FROM agent_stat
    UNION ALL SELECT 'end:' || queue_number || ':' || number, 0, 1, last_end::text, 0 FROM agent_stat
    UNION ALL SELECT 'miss:' || queue_number || ':' || number, 0, 1, unanswered::text, 0 FROM agent_stat;

-- How far the agent shipper read each events file (one transaction with the changes).
CREATE TABLE agent_event_offset (
    file    TEXT PRIMARY KEY,
    "offset" BIGINT NOT NULL
);
