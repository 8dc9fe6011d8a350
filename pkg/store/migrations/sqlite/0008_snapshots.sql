-- A VM's snapshots: internal qcow2 snapshots of its overlay. A record is
-- written pending before the qcow2 snapshot is taken and marked made after,
-- so a vmd killed in between leaves a pending record the next vmd removes
-- (with the qcow2 snapshot, if it was taken). size_gb is counted in the
-- owner's used_disk_gb from the pending insert until the record goes.
CREATE TABLE snapshots (
	vm_id       TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
	name        TEXT NOT NULL,
	size_gb     INTEGER NOT NULL CHECK (size_gb >= 0),
	memory      INTEGER NOT NULL DEFAULT 0,
	consistency TEXT NOT NULL DEFAULT '',
	pending     INTEGER NOT NULL DEFAULT 1,
	created_at  INTEGER NOT NULL,
	PRIMARY KEY (vm_id, name)
);

-- How many snapshots a VM keeps (0: no limit); the oldest go first.
CREATE TABLE snapshot_retention (
	vm_id TEXT PRIMARY KEY REFERENCES vms (id) ON DELETE CASCADE,
	keep  INTEGER NOT NULL CHECK (keep >= 0)
);
