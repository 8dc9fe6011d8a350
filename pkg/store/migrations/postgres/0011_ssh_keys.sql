-- A user's SSH public keys; they go with the account.
CREATE TABLE ssh_keys (
	user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	key         TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (user_id, name),
	UNIQUE (user_id, fingerprint)
);
-- What a VM was given at create time (the owner's keys then, plus the
-- request's), and the host keys its guest reported: one key a line.
ALTER TABLE vms ADD COLUMN ssh_keys TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN host_keys TEXT NOT NULL DEFAULT '';
