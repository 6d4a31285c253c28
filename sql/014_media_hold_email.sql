-- 014 (issue 13, media): what waiting queue callers hear, and voicemail by email.
-- Per queue: music on hold from the media service (NULL: the caller waits in silence, as
-- before), every announce_interval seconds the caller's position and/or expected wait.
ALTER TABLE queue ADD COLUMN hold_music TEXT CHECK (hold_music ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$');
ALTER TABLE queue ADD COLUMN announce_interval INTEGER NOT NULL DEFAULT 30
    CHECK (announce_interval BETWEEN 0 AND 3600);
ALTER TABLE queue ADD COLUMN announce TEXT NOT NULL DEFAULT 'position'
    CHECK (announce IN ('none', 'position', 'wait', 'both'));
-- Per voicemail box: each new message is emailed (WAV attached) to this address; the
-- message is then kept, or deleted once the mail server took it (email_keep false).
ALTER TABLE voicemail_box ADD COLUMN email TEXT
    CHECK (email ~ '^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,200}\.[A-Za-z]{2,24}$');
ALTER TABLE voicemail_box ADD COLUMN email_keep BOOLEAN NOT NULL DEFAULT true;
-- Messages waiting to be emailed: the media service's mailer retries until sent (or gives up).
ALTER TABLE voicemail_message ADD COLUMN email_state TEXT
    CHECK (email_state IN ('pending', 'sent', 'failed'));
ALTER TABLE voicemail_message ADD COLUMN email_attempts INTEGER NOT NULL DEFAULT 0;
-- The box owner's recorded name (key 5 in the mailbox), said in the default greeting.
ALTER TABLE voicemail_box ADD COLUMN name_pcm BYTEA
    CHECK (name_pcm IS NULL OR (length(name_pcm) % 2 = 0 AND length(name_pcm) > 0));
