-- Cluster members: every vmd sharing the database registers here and
-- heartbeats; placement reads capacity from here and usage from vms.node.
CREATE TABLE nodes (
	name          TEXT PRIMARY KEY,
	advertise_url TEXT NOT NULL,
	cpus          INTEGER NOT NULL CHECK (cpus >= 0),
	memory_mb     INTEGER NOT NULL CHECK (memory_mb >= 0),
	disk_gb       INTEGER NOT NULL CHECK (disk_gb >= 0),
	draining      INTEGER NOT NULL DEFAULT 0,
	heartbeat_at  INTEGER NOT NULL,
	started_at    INTEGER NOT NULL
);
CREATE INDEX vms_node ON vms (node);
