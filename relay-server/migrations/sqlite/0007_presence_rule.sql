-- Who may watch a user's presence (SIP SUBSCRIBE, SERVICE GetPresence, GET /login/{email}):
-- a JSON object {"allow": "signed-in"|"everyone"|"listed", "emails": [...]}, set over REST
-- (`PUT /user/{email}/presence-rule`). NULL is the default: signed-in users only.
ALTER TABLE users ADD COLUMN presence_rule TEXT;
