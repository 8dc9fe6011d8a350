package vm

import "context"

// SnapshotDriver is a Driver that can snapshot, restore and clone its
// guests' disks (qemu.Driver): an optional ability, found by type
// assertion. Snapshots live inside the guest's qcow2 overlay (internal
// snapshots), so they go with its files.
type SnapshotDriver interface {
	// DiskBytes is the space the guest's overlay takes on the host now: the
	// most a snapshot taken now can keep allocated once the guest overwrites it.
	DiskBytes(s GuestSpec) (int64, error)
	// Snapshot takes snapshot name of the guest's disk: in the qcow2 file of
	// a stopped guest, through its monitor for a running one. memory saves
	// the running guest's state too (its vCPUs pause meanwhile).
	Snapshot(ctx context.Context, s GuestSpec, name string, memory bool) error
	// RestoreSnapshot puts a stopped guest's disk back to the snapshot; on a
	// running guest it loads a memory snapshot live, where the guest then runs on.
	RestoreSnapshot(ctx context.Context, s GuestSpec, name string) error
	// LaunchSnapshot starts a stopped guest at a memory snapshot's state.
	LaunchSnapshot(ctx context.Context, s GuestSpec, name string) error
	// DeleteSnapshot removes the snapshot from the guest's disk, running or not.
	DeleteSnapshot(ctx context.Context, s GuestSpec, name string) error
	// DiskSnapshots lists the snapshots the guest's disk holds.
	DiskSnapshots(ctx context.Context, s GuestSpec) ([]string, error)
	// ProvisionClone is Provision with a disk that starts as src's current
	// disk (src stopped) or, with snap, as that snapshot of it: an overlay of
	// its own on basePath, sharing nothing else with src.
	ProvisionClone(ctx context.Context, s GuestSpec, basePath string, src GuestSpec, snap string) error
}

// Freezer is a Driver that can freeze a running guest's file systems
// through its guest agent (optional; a guest without an agent answers an
// error, and its snapshot is crash-consistent). Thaw must follow a freeze
// whatever happened in between.
type Freezer interface {
	FsFreeze(ctx context.Context, id string) (int, error)
	FsThaw(ctx context.Context, id string) (int, error)
}
