// Package mailtest runs a real SMTP server in the test process (emersion's
// go-smtp) and keeps what it receives, so tests exercise a real exchange.
package mailtest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/vmdhq/vmd/internal/testutil"
)

// Message is one received e-mail.
type Message struct {
	From string
	To   []string
	Data string
}

// Server is a running SMTP server on 127.0.0.1.
type Server struct {
	Addr string
	mu   sync.Mutex
	msgs []Message
	cond *sync.Cond
	// User and Pass, when set, are required through AUTH PLAIN.
	User, Pass string
}

// Start starts a server that t stops at its end.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{}
	s.cond = sync.NewCond(&s.mu)
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// URL is the server's smtp:// URL for --smtp-url.
func (s *Server) URL() string { return "smtp://" + s.Addr }

// Messages returns what arrived so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitFor waits until a message to addr arrived and returns the newest one.
func (s *Server) WaitFor(t testing.TB, addr string, timeout time.Duration) Message {
	t.Helper()
	var m Message
	if !testutil.WaitFor(timeout, func() bool {
		msgs := s.Messages()
		for i := len(msgs) - 1; i >= 0; i-- {
			for _, to := range msgs[i].To {
				if to == addr {
					m = msgs[i]
					return true
				}
			}
		}
		return false
	}) {
		t.Fatalf("no e-mail to %s within %s", addr, timeout)
	}
	return m
}

var tokenRe = regexp.MustCompile(`token=([A-Za-z0-9_-]+)`)

// Token returns the verification token in a message's link.
func (m Message) Token() string {
	if mm := tokenRe.FindStringSubmatch(m.Data); mm != nil {
		return mm[1]
	}
	return ""
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s      *Server
	from   string
	to     []string
	authed bool
}

func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (x *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != x.s.User || pass != x.s.Pass {
			return errors.New("invalid credentials")
		}
		x.authed = true
		return nil
	}), nil
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.s.User != "" && !x.authed {
		return smtp.ErrAuthRequired
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error { x.to = append(x.to, to); return nil }

func (x *session) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, Message{From: x.from, To: x.to, Data: b.String()})
	x.s.mu.Unlock()
	return nil
}

func (x *session) Reset() { x.from, x.to = "", nil }

func (x *session) Logout() error { return nil }
