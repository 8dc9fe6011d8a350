-- A VM's network: 'nat' (one NIC on vmd's per-VM userspace network) or 'none'.
-- VMs created before this had no NIC, so they keep none; new ones default to nat in vm.Service.
ALTER TABLE vms ADD COLUMN network TEXT NOT NULL DEFAULT 'none';
