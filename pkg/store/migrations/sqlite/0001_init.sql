-- Times are INTEGER microseconds since the Unix epoch, UTC.
CREATE TABLE users (
	id              TEXT PRIMARY KEY,
	email           TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
	password_hash   TEXT NOT NULL,
	admin           INTEGER NOT NULL DEFAULT 0,
	verified        INTEGER NOT NULL DEFAULT 0,
	quota_vms       INTEGER NOT NULL CHECK (quota_vms >= 0),
	quota_cpus      INTEGER NOT NULL CHECK (quota_cpus >= 0),
	quota_memory_mb INTEGER NOT NULL CHECK (quota_memory_mb >= 0),
	quota_disk_gb   INTEGER NOT NULL CHECK (quota_disk_gb >= 0),
	used_vms        INTEGER NOT NULL DEFAULT 0 CHECK (used_vms >= 0),
	used_cpus       INTEGER NOT NULL DEFAULT 0 CHECK (used_cpus >= 0),
	used_memory_mb  INTEGER NOT NULL DEFAULT 0 CHECK (used_memory_mb >= 0),
	used_disk_gb    INTEGER NOT NULL DEFAULT 0 CHECK (used_disk_gb >= 0),
	created_at      INTEGER NOT NULL
);

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	kind       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE tokens (
	hash       TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	expires_at INTEGER NOT NULL
);
CREATE INDEX tokens_user_id ON tokens (user_id);

CREATE TABLE vms (
	id         TEXT PRIMARY KEY,
	owner_id   TEXT NOT NULL REFERENCES users (id),
	name       TEXT NOT NULL,
	template   TEXT NOT NULL,
	cpu        INTEGER NOT NULL CHECK (cpu >= 0),
	memory_mb  INTEGER NOT NULL CHECK (memory_mb >= 0),
	disk_gb    INTEGER NOT NULL CHECK (disk_gb >= 0),
	user_data  TEXT NOT NULL DEFAULT '',
	state      TEXT NOT NULL,
	desired    TEXT NOT NULL,
	node       TEXT NOT NULL DEFAULT '',
	message    TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	UNIQUE (owner_id, name)
);
CREATE INDEX vms_created_at ON vms (created_at);

CREATE TABLE vm_events (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	vm_id   TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
	time    INTEGER NOT NULL,
	state   TEXT NOT NULL,
	message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX vm_events_vm_id ON vm_events (vm_id, id);
