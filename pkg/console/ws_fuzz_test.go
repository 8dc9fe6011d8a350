package console_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/vmdhq/vmd/pkg/console"
	"github.com/vmdhq/vmd/pkg/console/consoletest"
	"github.com/vmdhq/vmd/pkg/onetime"
)

// FuzzServeWS sends the console's WebSocket entry arbitrary requests (method,
// VM id of the path, query, the handshake headers, the caller) with a fresh
// valid token each time, written TOKEN in the fuzzed query; VMID and USER
// stand for the real VM and user. It must never panic; a refused request
// must leave its token usable; and a token is spent only by a request that
// holds in full: GET, that token for that VM, WebSocket 13 with a key, no
// foreign Origin, and a caller that is the token's user or, without an
// Origin, is named at all.
func FuzzServeWS(f *testing.F) {
	tokens := console.NewMemoryTokens(nil)
	e := consoletest.New(f, func(c *console.Config) {
		c.Tokens = tokens
		c.Log = slog.New(slog.DiscardHandler) // a line a refused upgrade is noise here
	})
	u := e.AddUser(f, "ada")
	v := e.AddSyntheticVM(f, u, "web")
	origin := e.Server.URL

	const key = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455's sample
	// method, path VM id, query, Origin, Connection, Upgrade, version, key, caller
	for _, s := range [][9]string{
		{"GET", "VMID", "token=TOKEN", "", "Upgrade", "websocket", "13", key, "USER"},
		{"GET", "VMID", "token=TOKEN", "", "Upgrade", "websocket", "13", "k", "USER"}, // not 16 bytes of base64
		{"GET", "VMID", "token=TOKEN", "", "Upgrade", "websocket", "13", " " + key + " ", "USER"},
		{"GET", "VMID", "token=TOKEN", origin, "keep-alive, Upgrade", "WebSocket", "13", key, ""},
		{"GET", "VMID", "token=TOKEN", strings.ToUpper(origin), "upgrade", "websocket", "13", key, "USER"},
		{"GET", "VMID", "token=TOKEN", "http://evil.example", "Upgrade", "websocket", "13", key, "USER"},
		{"GET", "VMID", "token=TOKEN", "", "Upgrade", "websocket", "13", key, ""},
		{"GET", "VMID", "token=TOKEN", "", "Upgrade", "websocket", "8", key, "USER"},
		{"GET", "VMID", "token=TOKEN", "", "Upgrade", "websocket", "13", "", "USER"},
		{"POST", "VMID", "token=TOKEN", "", "Upgrade", "websocket", "13", key, "USER"},
		{"GET", "vm_other", "token=TOKEN", "", "Upgrade", "websocket", "13", key, "USER"},
		{"GET", "VMID", "token=TOKEN", "", "Upgrade", "websocket", "13", key, "u_bob"},
		{"GET", "VMID", "token=TOKENx", "", "Upgrade", "websocket", "13", key, "USER"},
		{"GET", "VMID", "token=&token=TOKEN", "", "Upgrade", "websocket", "13", key, "USER"},
		{"GET", "VMID", "token=TOKEN;x=1", "", "Upgrade", "websocket", "13", key, "USER"},
		{"GET", "VMID", "%zz&token=TOKEN", "", "Upgrade", "websocket", "13", key, "USER"},
		{"GET", "VMID", "", "", "", "", "", "", ""},
		{"GET", "VMID%2F..", "token=TOKEN", "null", "Upgrade", "h2c", "13", key, "USER"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8])
	}

	f.Fuzz(func(t *testing.T, method, vmID, query, orig, connection, upgrade, version, key, authUser string) {
		ctx := context.Background()
		res, err := e.Console.Issue(ctx, u, "", v)
		if err != nil {
			t.Fatal(err)
		}
		wsURL, err := url.Parse(res.WSURL)
		if err != nil {
			t.Fatal(err)
		}
		tok := wsURL.Query().Get("token")
		hash := onetime.Hash(tok)
		defer func() { _, _ = tokens.Take(ctx, hash) }() // keeps the store small

		vmID = strings.ReplaceAll(vmID, "VMID", v.ID)
		query = strings.ReplaceAll(query, "TOKEN", tok)
		authUser = strings.ReplaceAll(authUser, "USER", u.ID)
		r := &http.Request{Method: method, Header: http.Header{}, Host: wsURL.Host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			URL: &url.URL{Path: "/api/v1/vms/" + vmID + "/console/ws", RawQuery: query}}
		for name, val := range map[string]string{"Origin": orig, "Connection": connection, "Upgrade": upgrade,
			"Sec-WebSocket-Version": version, "Sec-WebSocket-Key": key} {
			if val != "" {
				r.Header.Set(name, val)
			}
		}
		r = r.WithContext(ctx)
		rec := httptest.NewRecorder()
		serveErr := e.Console.ServeWS(rec, r, vmID, authUser)
		_, getErr := tokens.Get(ctx, hash)
		spent := getErr != nil
		if serveErr != nil && spent {
			t.Fatalf("refused (%v) and the token spent", serveErr)
		}
		if serveErr == nil && !spent {
			t.Fatal("accepted without spending the token")
		}
		if !spent {
			return
		}
		// The recorder cannot be hijacked: websocket.Accept answers 501 once
		// it has found nothing to refuse, anything else is its own refusal,
		// and a token spent on a refusal is one the checks before it missed.
		if rec.Code != http.StatusNotImplemented {
			t.Fatalf("token spent, then the upgrade refused: %d %s", rec.Code, strings.TrimSpace(rec.Body.String()))
		}
		q, _ := url.ParseQuery(query)
		switch {
		case method != http.MethodGet:
			t.Fatalf("spent by method %q", method)
		case vmID != v.ID:
			t.Fatalf("spent for vm %q", vmID)
		case q.Get("token") != tok:
			t.Fatalf("spent by query %q", query)
		case version != "13" || len(r.Header.Values("Sec-WebSocket-Key")) != 1:
			t.Fatalf("spent by websocket version %q key %q", version, key)
		case orig != "" && !strings.EqualFold(orig, origin):
			t.Fatalf("spent from origin %q", orig)
		case authUser != "" && authUser != u.ID, orig == "" && authUser == "":
			t.Fatalf("spent for caller %q with origin %q", authUser, orig)
		case !strings.Contains(strings.ToLower(connection), "upgrade") || !strings.Contains(strings.ToLower(upgrade), "websocket"):
			t.Fatalf("spent with Connection %q Upgrade %q", connection, upgrade)
		}
	})
}
