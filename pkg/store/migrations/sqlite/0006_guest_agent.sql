-- What the guest agent (or the serial ready line) says of a running guest:
-- whether it is ready and its addresses (a JSON array of strings). Both go
-- back to false and [] whenever the VM leaves running. The change feed
-- carries ready, so a wait for it follows the feed.
ALTER TABLE vms ADD COLUMN ready INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vms ADD COLUMN addresses TEXT NOT NULL DEFAULT '[]';
ALTER TABLE changes ADD COLUMN ready INTEGER NOT NULL DEFAULT 0;
