package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vmdhq/vmd/pkg/store"
)

// HousekeeperConfig sets up a Housekeeper. Zero values take the defaults noted.
type HousekeeperConfig struct {
	Store store.Store
	// Interval between passes (default 10 min); the first runs at once.
	Interval time.Duration
	// KeepChanges is how long the change feed keeps an entry (default 7 days):
	// a feed reader may resume from any ID it saw within that window.
	KeepChanges time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Housekeeper keeps what the store derives true over time: the owners'
// usage counters are recounted from their VM records (a drift is logged
// and fixed), and the change feed is pruned to its window.
type Housekeeper struct {
	cfg HousekeeperConfig
}

// NewHousekeeper returns a Housekeeper; call Run.
func NewHousekeeper(c HousekeeperConfig) *Housekeeper {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Minute
	}
	if c.KeepChanges <= 0 {
		c.KeepChanges = 7 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Housekeeper{cfg: c}
}

// Run does a pass at once and then every Interval, until ctx ends.
func (h *Housekeeper) Run(ctx context.Context) {
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		if err := h.Pass(ctx); err != nil && ctx.Err() == nil {
			h.cfg.Logger.Warn("housekeeping", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Pass recounts usage and prunes the change feed once.
func (h *Housekeeper) Pass(ctx context.Context) error {
	fixes, rerr := h.cfg.Store.RecountUsage(ctx)
	for _, f := range fixes {
		h.cfg.Logger.Warn("housekeeping: usage counters drifted from the VM records; fixed",
			"user", f.UserID, "was", f.Was, "now", f.Now)
	}
	before := h.cfg.Now().Add(-h.cfg.KeepChanges)
	n, perr := h.cfg.Store.PruneChanges(ctx, before)
	if perr == nil && n > 0 {
		h.cfg.Logger.Info("housekeeping: pruned the change feed", "deleted", n, "before", before.UTC())
	}
	if err := errors.Join(rerr, perr); err != nil {
		return fmt.Errorf("housekeeping: %w", err)
	}
	return nil
}
