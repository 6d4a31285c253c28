-- Issue 9 item 5: provisioned text can never become a SIP header.
-- Every free-text column that reaches a From display name (subscriber display and public
-- names, DID display tags, ring-all display formats) holds printable text only: no control
-- characters (CR/LF above all), no invisible format or separator characters (bidi overrides,
-- zero-width spaces, U+2028/2029), and a length limit. kemictl checks the same rules first
-- (provision/text.py) with an error naming the field; these constraints stop a direct SQL
-- INSERT/UPDATE too. Names and numbers were already restricted to [A-Za-z0-9_.-] / digits.
--
-- Existing rows that break the rules are repaired, not refused, so the migration never fails
-- on a live database: each forbidden character becomes a space, the result is trimmed and
-- cut to the limit (an empty result becomes NULL, or the default format for a ring-all
-- group). A NOTICE says how many rows were changed.

CREATE FUNCTION kemi_printable(t TEXT, max_chars INTEGER) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT char_length(t) <= max_chars
       AND t !~ '[\x01-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]'
$$;

CREATE FUNCTION kemi_make_printable(t TEXT, max_chars INTEGER) RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT nullif(left(btrim(regexp_replace(t,
        '[\x01-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]', ' ', 'g')),
        max_chars), '')
$$;

DO $$
DECLARE
    changed INTEGER := 0;
    n INTEGER;
BEGIN
    UPDATE subscriber SET display_name = kemi_make_printable(display_name, 64)
     WHERE NOT kemi_printable(display_name, 64);
    GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
    UPDATE subscriber SET public_name = kemi_make_printable(public_name, 64)
     WHERE NOT kemi_printable(public_name, 64);
    GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
    UPDATE did SET display_tag = kemi_make_printable(display_tag, 32)
     WHERE NOT kemi_printable(display_tag, 32);
    GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
    UPDATE ringall_group SET display_format = coalesce(kemi_make_printable(display_format, 64), '{group}: {caller}')
     WHERE NOT kemi_printable(display_format, 64);
    GET DIAGNOSTICS n = ROW_COUNT; changed := changed + n;
    IF changed > 0 THEN
        RAISE NOTICE '006_text_safety: % provisioned text value(s) had control characters or were too long; repaired', changed;
    END IF;
END
$$;

ALTER TABLE subscriber
    ADD CONSTRAINT subscriber_display_name_printable CHECK (kemi_printable(display_name, 64)),
    ADD CONSTRAINT subscriber_public_name_printable CHECK (kemi_printable(public_name, 64));
ALTER TABLE did
    ADD CONSTRAINT did_display_tag_printable CHECK (kemi_printable(display_tag, 32));
ALTER TABLE ringall_group
    ADD CONSTRAINT ringall_group_display_format_printable CHECK (kemi_printable(display_format, 64));
