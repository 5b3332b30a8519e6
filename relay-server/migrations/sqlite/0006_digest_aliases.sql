-- Phones authenticate with the username they are configured with: the full email, its local
-- part alone (user `jan` on domain `example.net`) or the email with '@' escaped. Each needs
-- its own HA1 (the username is hashed in), so the other forms are stored beside the email's:
-- a JSON array of [username, md5, sha256]. Accounts made before have none until their next
-- password login or password change stores them.
ALTER TABLE users ADD COLUMN ha1_aliases TEXT;
