-- Expiry and idle stop (issue 12). expires_at: NULL for a VM that never
-- expires; idle_stop_s: 0 when off; last_active_at: the last console, exec,
-- port-forward or API action on the VM (NULL: none since its creation).
-- A user's TTL limits: 0 takes the node's defaults.
ALTER TABLE vms ADD COLUMN expires_at INTEGER;
ALTER TABLE vms ADD COLUMN idle_stop_s INTEGER NOT NULL DEFAULT 0 CHECK (idle_stop_s >= 0);
ALTER TABLE vms ADD COLUMN last_active_at INTEGER;
CREATE INDEX vms_expires_at ON vms (expires_at);
ALTER TABLE users ADD COLUMN max_ttl_s INTEGER NOT NULL DEFAULT 0 CHECK (max_ttl_s >= 0);
ALTER TABLE users ADD COLUMN default_ttl_s INTEGER NOT NULL DEFAULT 0 CHECK (default_ttl_s >= 0);
