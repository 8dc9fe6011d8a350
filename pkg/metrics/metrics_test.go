package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmdhq/vmd/pkg/store"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

func TestVM(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewVM(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveProvision(30*time.Millisecond, nil)
	m.ObserveProvision(time.Second, errors.New("disk full"))
	m.ObserveBoot(true)
	m.ObserveBoot(true)
	m.ObserveBoot(false)
	m.ObserveReconcile(2 * time.Millisecond)

	tests := []struct {
		metric string
		want   string
	}{
		{"vm_boot_success_total", "vm_boot_success_total 2"},
		{"vm_boot_failure_total", "vm_boot_failure_total 1"},
		{"vm_provision_duration_seconds", `vm_provision_duration_seconds_count{result="ok"} 1`},
		{"vm_provision_duration_seconds", `vm_provision_duration_seconds_count{result="error"} 1`},
		{"controller_reconcile_duration_seconds", "controller_reconcile_duration_seconds_count 1"},
	}
	text := gatherText(t, reg)
	for _, tt := range tests {
		if !strings.Contains(text, tt.want+"\n") {
			t.Errorf("%s: no %q in\n%s", tt.metric, tt.want, text)
		}
	}
	if _, err := NewVM(reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
}

func TestQueueDepth(t *testing.T) {
	reg := prometheus.NewRegistry()
	depth := int64(3)
	if err := RegisterQueueDepth(reg, func() int64 { return depth }); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int64{3, 0, -1} {
		depth = want
		if text := gatherText(t, reg); !strings.Contains(text, "queue_depth "+strconv.FormatInt(want, 10)+"\n") {
			t.Errorf("depth %d: scrape says\n%s", want, text)
		}
	}
}

// TestDB runs store calls through the decorator on both real backends and
// checks each landed in its own op label and errors pass through unchanged.
func TestDB(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		reg := prometheus.NewRegistry()
		db, err := NewDB(reg)
		if err != nil {
			t.Fatal(err)
		}
		s := db.Wrap(b.Open(t))
		ctx := context.Background()
		u := store.User{ID: "u_1", Email: "ada@example.com", PasswordHash: "x", CreatedAt: time.Now()}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, u); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second create: %v, want ErrConflict", err)
		}
		if got, err := s.GetUserByEmail(ctx, "ada@example.com"); err != nil || got.ID != u.ID {
			t.Fatalf("get by email: %+v %v", got, err)
		}
		if _, err := s.GetVM(ctx, "vm_none"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get missing vm: %v, want ErrNotFound", err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		text := gatherText(t, reg)
		for op, n := range map[string]int{"create_user": 2, "get_user_by_email": 1, "get_vm": 1, "ping": 1} {
			want := `db_query_duration_seconds_count{op="` + op + `"} ` + strconv.Itoa(n) + "\n"
			if !strings.Contains(text, want) {
				t.Errorf("no %q in\n%s", want, text)
			}
		}
	})
}

// gatherText scrapes reg the way Prometheus does and returns the text format.
func gatherText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}
