-- The per-owner change feed behind GET /events. Unlike vm_events it has no
-- foreign key to vms: a VM's last entry (state 'deleted') outlives it.
-- AUTOINCREMENT: ids are never reused, even after the newest rows go.
CREATE TABLE changes (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	owner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	vm_id    TEXT NOT NULL,
	vm_name  TEXT NOT NULL,
	state    TEXT NOT NULL,
	desired  TEXT NOT NULL,
	message  TEXT NOT NULL DEFAULT '',
	time     INTEGER NOT NULL
);
CREATE INDEX changes_owner_id ON changes (owner_id, id);
