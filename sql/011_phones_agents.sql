-- phones (issue 12): agent keys. An agent pauses (with a reason code) or turns on do not
-- disturb from the phone; the proxy pauses an agent who leaves too many offers unanswered.
-- A paused agent is logged out (logged_in = FALSE) with the reason kept, so routing needs
-- nothing new and unpausing restores exactly what the pause took.
ALTER TABLE queue_agent ADD COLUMN paused_reason TEXT CHECK (paused_reason ~ '^[a-z0-9_]{1,32}$');
ALTER TABLE ringall_member ADD COLUMN paused_reason TEXT CHECK (paused_reason ~ '^[a-z0-9_]{1,32}$');
-- Unanswered offers in a row after which an agent is paused automatically (NULL: never).
ALTER TABLE queue ADD COLUMN auto_pause INTEGER CHECK (auto_pause BETWEEN 1 AND 100);
-- Seconds between the 182 Queued a waiting caller gets again (NULL: 60).
ALTER TABLE queue ADD COLUMN progress_interval INTEGER CHECK (progress_interval BETWEEN 1 AND 600);
