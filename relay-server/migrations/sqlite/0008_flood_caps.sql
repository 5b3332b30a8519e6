-- Flood caps (issue 18). A mailbox is capped in messages, bytes and messages per sender:
-- each message's size (the bytes of its url, body, subject and sender as stored) is kept in a
-- column so a mailbox's bytes are a sum, and the counts per sender read an index. A
-- contact's queue is capped per sender too: a partial index holds the queued SENDs only.
ALTER TABLE mail ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE mail SET size = COALESCE(length(CAST(url AS BLOB)), 0)
                     + COALESCE(length(CAST(body AS BLOB)), 0)
                     + COALESCE(length(CAST(subject AS BLOB)), 0)
                     + length(CAST(sender AS BLOB));
CREATE INDEX mail_sender ON mail(owner, sender);
CREATE INDEX sends_queued_sender ON sends(to_email, to_contact, sender) WHERE status = 'queued';
