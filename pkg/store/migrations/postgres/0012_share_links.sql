-- View-only console share links of one VM. Only the SHA-256 of a link's
-- secret is kept; the link opens view-only sessions as its maker (owner_id)
-- until expires_at or until it is deleted (revoked). Kept here rather than
-- in one vmd's memory, so a link works on every node and outlives a restart.
CREATE TABLE share_links (
	id         TEXT PRIMARY KEY,
	vm_id      TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
	owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	hash       TEXT NOT NULL UNIQUE,
	created_at TIMESTAMPTZ NOT NULL,
	expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX share_links_vm ON share_links (vm_id, created_at);
