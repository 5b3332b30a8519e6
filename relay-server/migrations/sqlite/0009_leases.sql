-- Leases of relays sharing this database (--cluster): who holds what until when (ms since
-- the epoch). A relay takes or renews a lease when it is free, expired or already its own.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    until  INTEGER NOT NULL
);
