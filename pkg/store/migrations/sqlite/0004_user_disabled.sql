-- An admin can disable an account: it cannot log in and its sessions end.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
