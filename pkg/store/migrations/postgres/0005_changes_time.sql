-- PruneChanges deletes the feed's entries older than the retention window.
CREATE INDEX changes_time ON changes (time);
