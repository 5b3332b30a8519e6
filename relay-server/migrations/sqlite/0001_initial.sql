-- restsip relay schema (SQLite). Times are milliseconds since the Unix epoch; JSON is stored as text.
CREATE TABLE users (
    email         TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    name          TEXT,
    data          TEXT NOT NULL DEFAULT '{}',
    created       INTEGER NOT NULL,
    next_contact  INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE mail (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    owner   TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    sender  TEXT NOT NULL,
    url     TEXT,
    body    TEXT,
    subject TEXT,
    created INTEGER NOT NULL
);
CREATE INDEX mail_owner ON mail(owner, id);

CREATE TABLE contacts (
    email      TEXT NOT NULL REFERENCES users(email) ON DELETE CASCADE,
    id         INTEGER NOT NULL,
    contact    TEXT,
    expires_at INTEGER NOT NULL,
    presence   TEXT,
    source     TEXT NOT NULL,
    PRIMARY KEY (email, id)
);
CREATE INDEX contacts_expiry ON contacts(expires_at);

CREATE TABLE calls (
    id               TEXT PRIMARY KEY,
    owner            TEXT NOT NULL,
    subject          TEXT,
    data             TEXT NOT NULL DEFAULT '{}',
    created          INTEGER NOT NULL,
    next_participant INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE participants (
    call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    id      INTEGER NOT NULL,
    login   TEXT NOT NULL,
    user    TEXT NOT NULL,
    session TEXT,
    data    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (call_id, id)
);
CREATE INDEX participants_login ON participants(login);

-- One row per (SEND, target contact). status: queued | delivered | cancelled.
CREATE TABLE sends (
    seq        INTEGER PRIMARY KEY,
    msg_id     TEXT NOT NULL,
    sender     TEXT NOT NULL,
    to_email   TEXT NOT NULL,
    to_contact INTEGER NOT NULL,
    target     TEXT NOT NULL,
    body       TEXT NOT NULL,
    sent       INTEGER NOT NULL,
    status     TEXT NOT NULL,
    FOREIGN KEY (to_email, to_contact) REFERENCES contacts(email, id) ON DELETE CASCADE
);
CREATE INDEX sends_target ON sends(to_email, to_contact, seq);
CREATE INDEX sends_msg ON sends(msg_id);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
