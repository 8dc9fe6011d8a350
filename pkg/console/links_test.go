package console_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
	"github.com/vmdhq/vmd/pkg/redisx/redistest"
	"github.com/vmdhq/vmd/pkg/store"
)

// TestShareLinks: a link is listed, opens view-only sessions (presence
// says so), is refused for another VM, and once revoked opens nothing and
// its open sessions close.
func TestShareLinks(t *testing.T) {
	e := consoletest.New(t, nil)
	alice, bob := e.AddUser(t, "alice"), e.AddUser(t, "bob")
	v, other := e.AddVM(t, alice, "web", false), e.AddVM(t, alice, "db", false)
	ctx := context.Background()

	if _, err := e.Console.CreateLink(ctx, bob, v, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("bob made a link of alice's vm: %v", err)
	}
	for _, ttl := range []time.Duration{time.Second, 25 * time.Hour} {
		if _, err := e.Console.CreateLink(ctx, alice, v, ttl); !errors.Is(err, console.ErrLinkTTL) {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
	}
	l, err := e.Console.CreateLink(ctx, alice, v, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	secret, ok := strings.CutPrefix(l.URL, e.Server.URL+"/console/"+v.ID+"#link=")
	if !ok || secret == "" || !strings.HasPrefix(l.ID, "lnk_") || l.ExpiresAt.Sub(l.CreatedAt) != 30*time.Minute {
		t.Fatalf("link %+v", l)
	}
	ls, err := e.Console.Links(ctx, alice, v)
	if err != nil || len(ls) != 1 || ls[0].ID != l.ID || ls[0].URL != "" {
		t.Fatalf("links %+v %v", ls, err)
	}
	if _, err := e.Console.LinkToken(ctx, other.ID, secret); !errors.Is(err, console.ErrTokenInvalid) {
		t.Fatalf("link of web opened db: %v", err)
	}
	tok, err := e.Console.LinkToken(ctx, v.ID, secret)
	if err != nil || !tok.ViewOnly {
		t.Fatalf("link token %+v %v", tok, err)
	}
	ws := mustDial(t, tok.WSURL)
	defer ws.CloseNow()
	testutil.Eventually(t, 10*time.Second, "console sessions", func() bool { return e.Console.Sessions(v.ID) == 1 })
	ps, err := e.Console.Presence(ctx, v.ID)
	if err != nil || len(ps) != 1 || !ps[0].ViewOnly || ps[0].LinkID != l.ID || ps[0].UserID != alice.ID {
		t.Fatalf("presence %+v %v", ps, err)
	}
	unused, err := e.Console.LinkToken(ctx, v.ID, secret)
	if err != nil {
		t.Fatal(err)
	}

	if err := e.Console.RevokeLink(ctx, alice, v, l.ID); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := ws.Read(rctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("session of a revoked link: %v", err)
	}
	if _, err := e.Console.LinkToken(ctx, v.ID, secret); !errors.Is(err, console.ErrTokenInvalid) {
		t.Fatalf("revoked link still gives tokens: %v", err)
	}
	refused(t, e, unused.WSURL, nil, console.ErrTokenInvalid) // a token it gave before the revocation
	if err := e.Console.RevokeLink(ctx, alice, v, l.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
}

// TestLinkStores runs the same link checks on both stores.
func TestLinkStores(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) console.LinkStore{
		"Memory": func(*testing.T) console.LinkStore { return console.NewMemoryTokens(nil) },
		"Redis": func(t *testing.T) console.LinkStore {
			rdb, prefix := redistest.Client(t)
			return console.NewRedisTokens(rdb, prefix)
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, ctx, now := open(t), context.Background(), time.Now()
			a := console.Link{ID: "lnk_a", VMID: "vm_1", OwnerID: "u", Hash: "ha", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			b := console.Link{ID: "lnk_b", VMID: "vm_1", OwnerID: "u", Hash: "hb", CreatedAt: now.Add(time.Second), ExpiresAt: now.Add(time.Hour)}
			c := console.Link{ID: "lnk_c", VMID: "vm_2", OwnerID: "u", Hash: "hc", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			for _, l := range []console.Link{a, b, c} {
				if err := s.PutLink(ctx, l); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.GetLink(ctx, "hb"); err != nil || got.ID != "lnk_b" {
				t.Fatalf("get: %+v %v", got, err)
			}
			ls, err := s.ListLinks(ctx, "vm_1")
			if err != nil || len(ls) != 2 || ls[0].ID != "lnk_a" || ls[1].ID != "lnk_b" {
				t.Fatalf("list: %+v %v", ls, err)
			}
			if ok, err := s.DeleteLink(ctx, "vm_1", "lnk_a"); !ok || err != nil {
				t.Fatalf("delete: %v %v", ok, err)
			}
			if ok, _ := s.DeleteLink(ctx, "vm_2", "lnk_b"); ok {
				t.Fatal("deleted a link through another vm")
			}
			if _, err := s.GetLink(ctx, "ha"); !errors.Is(err, console.ErrTokenInvalid) {
				t.Fatalf("deleted link: %v", err)
			}
			if ls, _ := s.ListLinks(ctx, "vm_1"); len(ls) != 1 || ls[0].ID != "lnk_b" {
				t.Fatalf("after delete: %+v", ls)
			}
		})
	}
}
