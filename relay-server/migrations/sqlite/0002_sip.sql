-- SIP: digest HA1 values computed at sign-up and password change (argon2 hashes cannot answer
-- a digest challenge), and the routing data of SIP registrations.
ALTER TABLE users ADD COLUMN digest_realm TEXT;
ALTER TABLE users ADD COLUMN ha1_md5 TEXT;
ALTER TABLE users ADD COLUMN ha1_sha256 TEXT;
-- JSON: transport, source address, Call-ID and CSeq of the REGISTER, Path.
ALTER TABLE contacts ADD COLUMN sip TEXT;
