-- The per-owner change feed behind GET /events. Unlike vm_events it has no
-- foreign key to vms: a VM's last entry (state 'deleted') outlives it.
CREATE TABLE changes (
	id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	owner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	vm_id    TEXT NOT NULL,
	vm_name  TEXT NOT NULL,
	state    TEXT NOT NULL,
	desired  TEXT NOT NULL,
	message  TEXT NOT NULL DEFAULT '',
	time     TIMESTAMPTZ NOT NULL
);
CREATE INDEX changes_owner_id ON changes (owner_id, id);
