-- Bearer tokens withdrawn before their expiry (a page logging out); kept until they expire.
CREATE TABLE revoked_tokens (
    id      TEXT PRIMARY KEY,
    expires INTEGER NOT NULL   -- when the token would have expired (s since the epoch)
);
