-- scale (issue 11): subscribers live once per machine in Kamailio's shared memory (htable
-- `subs`, kamailio.cfg), not in every SIP worker's snapshot.
--
-- kemi_subscriber_htable is what Kamailio's htable module loads at start (and on
-- `htable.reload subs`) and what the directory loader reads for one changed key: one row per
-- subscriber in htable's columns (key_name, key_type 0 = single value, value_type 0 = string,
-- key_value). key_value is the subscriber's per-call data as a JSON array, decoded by
-- kemi/subscriber_codec.py (field order fixed there):
--   [ha1, active, display_name, public_name, default_caller_id, hide_caller_id, send_pai,
--    [caller id 1, caller id 2, ...]]
CREATE VIEW kemi_subscriber_htable AS
SELECT s.number AS key_name, 0 AS key_type, 0 AS value_type,
       json_build_array(s.ha1, s.active, s.display_name, s.public_name, s.default_caller_id,
                        s.hide_caller_id, s.send_pai,
                        coalesce((SELECT json_agg(c.number ORDER BY c.position) FROM caller_id c
                                  WHERE c.subscriber = s.number), '[]'::json))::text AS key_value
FROM subscriber s;

-- Changes cost what they change: a subscriber (or caller-ID) row change NOTIFYs
-- 'subscriber:<number>' on kemi_config (one per row; identical payloads in one transaction
-- are folded by PostgreSQL), and the loader sets or deletes that one htable key over
-- Kamailio's RPC. TRUNCATE names no key: 'subscriber' alone means "resynchronise all".
DROP TRIGGER subscriber_changed ON subscriber;
DROP TRIGGER caller_id_changed ON caller_id;

CREATE FUNCTION kemi_notify_subscriber_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('kemi_config', 'subscriber:' || OLD.number);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('kemi_config', 'subscriber:' || NEW.number);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION kemi_notify_caller_id_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('kemi_config', 'subscriber:' || OLD.subscriber);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('kemi_config', 'subscriber:' || NEW.subscriber);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION kemi_notify_subscriber_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('kemi_config', 'subscriber');
    RETURN NULL;
END $$;

CREATE TRIGGER subscriber_row_changed AFTER INSERT OR UPDATE OR DELETE ON subscriber
    FOR EACH ROW EXECUTE FUNCTION kemi_notify_subscriber_row();
CREATE TRIGGER subscriber_truncated AFTER TRUNCATE ON subscriber
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_subscriber_all();
CREATE TRIGGER caller_id_row_changed AFTER INSERT OR UPDATE OR DELETE ON caller_id
    FOR EACH ROW EXECUTE FUNCTION kemi_notify_caller_id_row();
CREATE TRIGGER caller_id_truncated AFTER TRUNCATE ON caller_id
    FOR EACH STATEMENT EXECUTE FUNCTION kemi_notify_subscriber_all();
