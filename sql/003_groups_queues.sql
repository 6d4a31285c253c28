-- 003: ring-all groups (seed 004) and call-centre queues (seed 001), and the timeout
-- destination that lets the elements compose (a hunt or ring-all group overflowing into a queue).

-- A group number that rings every registered, logged-in member at once. Members see the
-- call as diverted from the group number and with display_format ({group}, {caller}).
CREATE TABLE ringall_group (
    id             SERIAL PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    number         TEXT NOT NULL UNIQUE CHECK (number ~ '^[0-9]{2,32}$'),
    display_format TEXT NOT NULL DEFAULT '{group}: {caller}' CHECK (length(display_format) <= 64),
    ring_timeout   INTEGER CHECK (ring_timeout BETWEEN 1 AND 600),
    timeout_target TEXT CHECK (timeout_target ~ '^[0-9]{2,32}$')
);
CREATE TABLE ringall_member (
    group_id  INTEGER NOT NULL REFERENCES ringall_group(id) ON DELETE CASCADE,
    number    TEXT NOT NULL REFERENCES subscriber(number) ON DELETE RESTRICT,
    logged_in BOOLEAN NOT NULL DEFAULT TRUE,    -- FALSE: logged out / do not disturb
    position  INTEGER NOT NULL,
    PRIMARY KEY (group_id, number)
);

-- A queue: callers wait in arrival order until an agent is free; strategy picks the agent.
CREATE TABLE queue (
    id             SERIAL PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    number         TEXT NOT NULL UNIQUE CHECK (number ~ '^[0-9]{2,32}$'),
    strategy       TEXT NOT NULL DEFAULT 'ringall' CHECK (strategy IN
                   ('ringall', 'fewest_calls', 'longest_idle', 'round_robin', 'linear', 'random')),
    ring_timeout   INTEGER NOT NULL DEFAULT 15 CHECK (ring_timeout BETWEEN 1 AND 600),
    max_wait       INTEGER NOT NULL DEFAULT 300 CHECK (max_wait BETWEEN 1 AND 86400),
    timeout_target TEXT CHECK (timeout_target ~ '^[0-9]{2,32}$'),
    timeout_code   INTEGER NOT NULL DEFAULT 480 CHECK (timeout_code BETWEEN 400 AND 699),
    sticky_window  INTEGER CHECK (sticky_window BETWEEN 1 AND 2592000),   -- routing by call history
    max_calls      INTEGER NOT NULL DEFAULT 1 CHECK (max_calls BETWEEN 1 AND 10)
);
CREATE TABLE queue_agent (
    queue_id  INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    number    TEXT NOT NULL REFERENCES subscriber(number) ON DELETE RESTRICT,
    tier      INTEGER NOT NULL DEFAULT 1 CHECK (tier BETWEEN 1 AND 9),   -- 1 rings first
    position  INTEGER NOT NULL,
    logged_in BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (queue_id, number)
);

ALTER TABLE hunt_group ADD COLUMN timeout_target TEXT CHECK (timeout_target ~ '^[0-9]{2,32}$');

CREATE TRIGGER ringall_group_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ringall_group
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER ringall_member_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ringall_member
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER queue_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON queue
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
CREATE TRIGGER queue_agent_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON queue_agent
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_config();
