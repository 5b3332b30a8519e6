-- restsip relay schema (PostgreSQL): the schema SQLite reaches after its migrations 0001-0008,
-- in one file (there were no PostgreSQL databases before). Later migrations are added per
-- engine, numbered after the SQLite side's (the next one of either engine is 0009).
-- Times are milliseconds since the Unix epoch; JSON is stored as text, as on SQLite, so both
-- engines read and write the same values. Ids that several relays sharing this database hand
-- out come from the database: identity sequences (mail, webhook events) and counters in a
-- locked row (a user's contact ids, a call's participant ids).
CREATE TABLE users (
    email         TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    name          TEXT,
    data          TEXT NOT NULL DEFAULT '{}',
    created       BIGINT NOT NULL,
    next_contact  BIGINT NOT NULL DEFAULT 1,
    -- SIP digest HA1 values (argon2 hashes cannot answer a digest challenge).
    digest_realm  TEXT,
    ha1_md5       TEXT,
    ha1_sha256    TEXT,
    -- JSON array of the HA1 values of the account's other usernames.
    ha1_aliases   TEXT,
    -- JSON: who may watch the user's presence; NULL: signed-in users.
    presence_rule TEXT
);

CREATE TABLE mail (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner   TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    sender  TEXT NOT NULL,
    url     TEXT,
    body    TEXT,
    subject TEXT,
    created BIGINT NOT NULL,
    -- bytes of url, body, subject and sender: a mailbox's bytes are a sum (flood caps)
    size    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX mail_owner ON mail(owner, id);
CREATE INDEX mail_sender ON mail(owner, sender);

CREATE TABLE contacts (
    email      TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    id         BIGINT NOT NULL,
    contact    TEXT,
    expires_at BIGINT NOT NULL,
    presence   TEXT,
    source     TEXT NOT NULL,
    -- JSON: transport, source address, Call-ID and CSeq of the REGISTER, Path.
    sip        TEXT,
    PRIMARY KEY (email, id)
);
CREATE INDEX contacts_expiry ON contacts(expires_at);

CREATE TABLE calls (
    id               TEXT PRIMARY KEY,
    owner            TEXT NOT NULL,
    subject          TEXT,
    data             TEXT NOT NULL DEFAULT '{}',
    created          BIGINT NOT NULL,
    next_participant BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE participants (
    call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    id      BIGINT NOT NULL,
    login   TEXT NOT NULL,
    "user"  TEXT NOT NULL,
    session TEXT,
    data    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (call_id, id)
);
CREATE INDEX participants_login ON participants(login);

-- One row per (SEND, target contact). status: queued | delivered | cancelled.
CREATE TABLE sends (
    seq        BIGINT PRIMARY KEY,
    msg_id     TEXT NOT NULL,
    sender     TEXT NOT NULL,
    to_email   TEXT NOT NULL,
    to_contact BIGINT NOT NULL,
    target     TEXT NOT NULL,
    body       TEXT NOT NULL,
    sent       BIGINT NOT NULL,
    status     TEXT NOT NULL,
    FOREIGN KEY (to_email, to_contact) REFERENCES contacts(email, id) ON DELETE CASCADE
);
CREATE INDEX sends_target ON sends(to_email, to_contact, seq);
CREATE INDEX sends_msg ON sends(msg_id);
CREATE INDEX sends_queued_sender ON sends(to_email, to_contact, sender) WHERE status = 'queued';

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Webhooks: a server application's subscription to an active resource, delivered by HTTP POST.
CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    target        TEXT NOT NULL,
    resource      TEXT NOT NULL,
    updates       TEXT NOT NULL,
    secret        TEXT NOT NULL,
    created       BIGINT NOT NULL,
    cursor        BIGINT,
    failing_since BIGINT,
    last_error    TEXT
);
CREATE INDEX webhooks_owner ON webhooks(owner, created);

-- The outbox: events waiting for their target's 2xx, delivered in seq order per webhook.
CREATE TABLE webhook_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id   BIGINT NOT NULL,
    body       TEXT NOT NULL,
    queued     BIGINT NOT NULL
);
CREATE INDEX webhook_events_hook ON webhook_events(webhook_id, seq);

-- Bearer tokens withdrawn before their expiry; kept until they expire (s since the epoch).
CREATE TABLE revoked_tokens (
    id      TEXT PRIMARY KEY,
    expires BIGINT NOT NULL
);
