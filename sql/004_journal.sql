-- 004: the call journal (issue 3). Kamailio workers append events to files under
-- var_dir/journal (kemi/journal.py); tools/journal_shipper.py moves them here in batches,
-- in the same transaction as its read offsets (journal_file), so nothing is lost or doubled.
-- Calls and legs are views over the raw events, so events may arrive in any order.

-- One row per event, as written: call_started (caller, dialled, kind, target), queued
-- (target = the queue), offered (member), leg_ended (member, outcome, code), answered
-- (member), call_ended (code, reason). (file_id, file_offset) is where the line was read.
CREATE TABLE journal_event (
    id          BIGSERIAL PRIMARY KEY,
    ts          TIMESTAMPTZ NOT NULL,
    call_id     TEXT NOT NULL,
    event       TEXT NOT NULL,
    member      TEXT,
    outcome     TEXT,
    code        INTEGER,
    caller      TEXT,
    dialled     TEXT,
    kind        TEXT,
    target      TEXT,
    reason      TEXT,
    file_id     INTEGER NOT NULL,
    file_offset BIGINT NOT NULL,
    UNIQUE (file_id, file_offset)
);
CREATE INDEX journal_event_call ON journal_event (call_id);
CREATE INDEX journal_event_member ON journal_event (member, ts) WHERE member IS NOT NULL;
CREATE INDEX journal_event_caller ON journal_event (caller, ts) WHERE event = 'call_started';
CREATE INDEX journal_event_ts ON journal_event (ts);

-- The shipper's read position in each journal file (bytes shipped). A row goes away with
-- its file; ids are never reused, so (file_id, file_offset) stays unique.
CREATE TABLE journal_file (
    id         SERIAL PRIMARY KEY,
    path       TEXT NOT NULL UNIQUE,
    shipped    BIGINT NOT NULL DEFAULT 0,
    shipped_at TIMESTAMPTZ
);

-- One row per call. wait_seconds: time in the queue until answered (or until the call
-- ended); talk_seconds: from the answer to the end.
CREATE VIEW journal_call AS
SELECT c.*,
       extract(epoch FROM coalesce(c.answered_at, c.ended_at) - c.queued_at) AS wait_seconds,
       extract(epoch FROM c.ended_at - c.answered_at) AS talk_seconds
FROM (
    SELECT call_id,
           min(ts) AS first_at,
           min(ts) FILTER (WHERE event = 'call_started') AS started_at,
           (array_agg(caller ORDER BY ts, id) FILTER (WHERE event = 'call_started'))[1] AS caller,
           (array_agg(dialled ORDER BY ts, id) FILTER (WHERE event = 'call_started'))[1] AS dialled,
           (array_agg(kind ORDER BY ts, id) FILTER (WHERE event = 'call_started'))[1] AS kind,
           (array_agg(target ORDER BY ts, id) FILTER (WHERE event = 'call_started'))[1] AS target,
           min(ts) FILTER (WHERE event = 'queued') AS queued_at,
           (array_agg(target ORDER BY ts, id) FILTER (WHERE event = 'queued'))[1] AS queue,
           min(ts) FILTER (WHERE event = 'answered') AS answered_at,
           (array_agg(member ORDER BY ts, id) FILTER (WHERE event = 'answered'))[1] AS answered_by,
           max(ts) FILTER (WHERE event = 'call_ended') AS ended_at,
           (array_agg(code ORDER BY ts DESC, id DESC) FILTER (WHERE event = 'call_ended'))[1] AS end_code,
           (array_agg(reason ORDER BY ts DESC, id DESC) FILTER (WHERE event = 'call_ended'))[1] AS end_reason
    FROM journal_event
    GROUP BY call_id
) c;

-- One row per member leg: each leg_ended with the offer that started it (none for members
-- skipped without ringing: not registered, logged out), plus offers with no end yet
-- (outcome NULL: still ringing, or the end was never recorded).
CREATE VIEW journal_leg AS
SELECT e.call_id, e.member, o.offered_at, e.ts AS ended_at, e.outcome, e.code,
       extract(epoch FROM e.ts - o.offered_at) AS ring_seconds
FROM (
    SELECT call_id, member, ts, outcome, code,
           lag(ts) OVER (PARTITION BY call_id, member ORDER BY ts, id) AS previous_end
    FROM journal_event
    WHERE event = 'leg_ended'
) e
LEFT JOIN LATERAL (
    SELECT max(x.ts) AS offered_at
    FROM journal_event x
    WHERE x.call_id = e.call_id AND x.member = e.member AND x.event = 'offered'
      AND x.ts <= e.ts AND (e.previous_end IS NULL OR x.ts > e.previous_end)
) o ON TRUE
UNION ALL
SELECT o.call_id, o.member, o.ts, NULL, NULL, NULL, NULL
FROM journal_event o
WHERE o.event = 'offered'
  AND NOT EXISTS (SELECT 1 FROM journal_event e
                  WHERE e.call_id = o.call_id AND e.member = o.member
                    AND e.event = 'leg_ended' AND e.ts >= o.ts);
