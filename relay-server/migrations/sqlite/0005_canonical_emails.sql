-- One address, one account: every stored email in canonical form (ASCII lower case, no
-- trailing dot; restsip_protocol::address). Where look-alikes exist (B@X and b@x), the account
-- already in canonical form keeps the address, else the oldest; the others stay as they are,
-- unreachable (every entry point now canonicalises), and the relay names them in its log at
-- every start. SQLite's lower() folds ASCII letters only, as the rule does.
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE email_renames AS
SELECT u.email AS old, lower(rtrim(u.email, '.')) AS new
FROM users u
WHERE u.email <> lower(rtrim(u.email, '.'))
  AND NOT EXISTS (
    SELECT 1 FROM users o
    WHERE o.email <> u.email
      AND lower(rtrim(o.email, '.')) = lower(rtrim(u.email, '.'))
      AND (o.email = lower(rtrim(o.email, '.'))
           OR o.created < u.created
           OR (o.created = u.created AND o.email < u.email)));

UPDATE users SET email = r.new FROM email_renames r WHERE users.email = r.old;
UPDATE mail SET owner = r.new FROM email_renames r WHERE mail.owner = r.old;
UPDATE mail SET sender = r.new FROM email_renames r WHERE mail.sender = r.old;
UPDATE contacts SET email = r.new FROM email_renames r WHERE contacts.email = r.old;
UPDATE calls SET owner = r.new FROM email_renames r WHERE calls.owner = r.old;
UPDATE participants SET user = r.new FROM email_renames r WHERE participants.user = r.old;
UPDATE sends SET sender = r.new FROM email_renames r WHERE sends.sender = r.old;
UPDATE sends SET to_email = r.new FROM email_renames r WHERE sends.to_email = r.old;
UPDATE webhooks SET owner = r.new FROM email_renames r WHERE webhooks.owner = r.old;

-- Paths that name a login: /login/{email} and /login/{email}/{id}.
UPDATE participants SET login = '/login/' || r.new || substr(participants.login, length(r.old) + 8)
FROM email_renames r
WHERE participants.login = '/login/' || r.old
   OR substr(participants.login, 1, length(r.old) + 8) = '/login/' || r.old || '/';
UPDATE sends SET target = '/login/' || r.new || substr(sends.target, length(r.old) + 8)
FROM email_renames r
WHERE sends.target = '/login/' || r.old
   OR substr(sends.target, 1, length(r.old) + 8) = '/login/' || r.old || '/';
UPDATE webhooks SET resource = '/login/' || r.new || substr(webhooks.resource, length(r.old) + 8)
FROM email_renames r
WHERE webhooks.resource = '/login/' || r.old
   OR substr(webhooks.resource, 1, length(r.old) + 8) = '/login/' || r.old || '/';

DROP TABLE email_renames;
