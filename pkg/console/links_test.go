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

// TestShareLinksOutliveTheConsole: links are in the store, so a second
// console over it (another node, or vmd after a restart) trades a link
// minted by the first for view-only tokens; an expired link is refused and
// the sessions it opened end at the next state poll, saying why.
func TestShareLinksOutliveTheConsole(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", false)
	ctx := context.Background()
	l, err := e.Console.CreateLink(ctx, alice, v, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := strings.Cut(l.URL, "#link=")

	other, err := console.New(console.Config{PublicURL: e.Server.URL, Store: e.Store,
		Sockets: console.LayoutSockets{Layout: e.Layout}, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if tok, err := other.LinkToken(ctx, v.ID, secret); err != nil || !tok.ViewOnly {
		t.Fatalf("link token from another console: %+v %v", tok, err)
	}
	if ls, err := other.Links(ctx, alice, v); err != nil || len(ls) != 1 || ls[0].ID != l.ID {
		t.Fatalf("links seen by another console: %+v %v", ls, err)
	}

	tok, err := e.Console.LinkToken(ctx, v.ID, secret)
	if err != nil {
		t.Fatal(err)
	}
	ws := mustDial(t, tok.WSURL)
	defer ws.CloseNow()
	testutil.Eventually(t, 10*time.Second, "console sessions", func() bool { return e.Console.Sessions(v.ID) == 1 })
	e.Clock.Advance(10 * time.Minute)
	if _, err := other.LinkToken(ctx, v.ID, secret); !errors.Is(err, console.ErrTokenInvalid) {
		t.Fatalf("expired link gives tokens: %v", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _, err = ws.Read(rctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "share link expired" {
		t.Fatalf("session of an expired link: %v", err)
	}
	if ls, err := e.Console.Links(ctx, alice, v); err != nil || len(ls) != 0 {
		t.Fatalf("expired link listed: %+v %v", ls, err)
	}
}

// TestRevokeElsewhere: a link revoked through another console (another
// node) ends this console's session of it at its next state poll.
func TestRevokeElsewhere(t *testing.T) {
	e := consoletest.New(t, nil)
	alice := e.AddUser(t, "alice")
	v := e.AddVM(t, alice, "web", false)
	ctx := context.Background()
	l, err := e.Console.CreateLink(ctx, alice, v, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := strings.Cut(l.URL, "#link=")
	tok, err := e.Console.LinkToken(ctx, v.ID, secret)
	if err != nil {
		t.Fatal(err)
	}
	ws := mustDial(t, tok.WSURL)
	defer ws.CloseNow()
	other, err := console.New(console.Config{PublicURL: e.Server.URL, Store: e.Store,
		Sockets: console.LayoutSockets{Layout: e.Layout}, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.RevokeLink(ctx, alice, v, l.ID); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _, err = ws.Read(rctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "share link revoked" {
		t.Fatalf("session of a link revoked elsewhere: %v", err)
	}
}
