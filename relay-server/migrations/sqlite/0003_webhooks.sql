-- Webhooks: a server application's subscription to an active resource, delivered by HTTP POST.
-- A webhook and every event it must deliver are committed before they count as accepted.
CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    target        TEXT NOT NULL,                 -- where events are POSTed
    resource      TEXT NOT NULL,                 -- /login/{email}[/{id}] or /call/{id}
    updates       TEXT NOT NULL,                 -- diff | full
    secret        TEXT NOT NULL,                 -- HMAC key of the signatures
    created       INTEGER NOT NULL,
    cursor        INTEGER,                       -- id of the last event queued: where to resume
    failing_since INTEGER,                       -- set when an event outlived the age limit
    last_error    TEXT                           -- why the last attempt failed, if it did
);
CREATE INDEX webhooks_owner ON webhooks(owner, created);

-- The outbox: events waiting for their target's 2xx, delivered in seq order per webhook.
CREATE TABLE webhook_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id   INTEGER NOT NULL,
    body       TEXT NOT NULL,                    -- the JSON Event exactly as POSTed
    queued     INTEGER NOT NULL                  -- when it was stored (ms)
);
CREATE INDEX webhook_events_hook ON webhook_events(webhook_id, seq);
