-- Calls between web users and phones whose SIP dialog a relay of a cluster holds: what another
-- relay needs to end them (BYE to the phone, `bye` to the web user) when that relay is gone.
-- Kept from the phone's answer until the call ends.
CREATE TABLE dialogs (
    call_id TEXT PRIMARY KEY NOT NULL,
    node    TEXT NOT NULL,
    record  TEXT NOT NULL
);
CREATE INDEX dialogs_by_node ON dialogs (node);
