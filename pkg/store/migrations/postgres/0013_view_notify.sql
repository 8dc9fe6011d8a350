-- Several vmd may share this database, each caching the VM views
-- (pkg/store/viewcache.go) until a write: every statement that changes a
-- VM, its events or its snapshots notifies the vmd_views channel, which
-- each store LISTENs on. Notifications are sent at commit, and one
-- transaction's identical notifications are sent once.
CREATE FUNCTION vmd_notify_views() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('vmd_views', '');
	RETURN NULL;
END
$$;
CREATE TRIGGER vms_notify_views AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vms
	FOR EACH STATEMENT EXECUTE FUNCTION vmd_notify_views();
CREATE TRIGGER vm_events_notify_views AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vm_events
	FOR EACH STATEMENT EXECUTE FUNCTION vmd_notify_views();
CREATE TRIGGER snapshots_notify_views AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON snapshots
	FOR EACH STATEMENT EXECUTE FUNCTION vmd_notify_views();
