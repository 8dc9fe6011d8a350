// Package mail sends vmd's e-mails (the sign-up verification link) over
// SMTP, or writes them to the log when no SMTP server is configured.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one plain-text e-mail.
type Message struct {
	To      string
	Subject string
	Body    string
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// LogSender writes messages to the log: the default when --smtp-url is empty,
// so a bare `vmd serve` can still complete a sign-up.
type LogSender struct {
	Log *slog.Logger
}

// Send implements Sender.
func (s LogSender) Send(_ context.Context, m Message) error {
	s.Log.Info("e-mail not sent (no --smtp-url); its content follows", "to", m.To, "subject", m.Subject, "body", m.Body)
	return nil
}

// SMTPSender sends through an SMTP server.
type SMTPSender struct {
	addr     string
	implicit bool // smtps://
	plainOK  bool // loopback server: STARTTLS not required
	user     string
	pass     string
	from     string
}

// NewSMTPSender parses smtp://[user:pass@]host:port or smtps://… . A
// non-loopback smtp:// server must offer STARTTLS, so credentials and links
// never cross a network in the clear.
func NewSMTPSender(rawURL, from string) (*SMTPSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("smtp url: %w", err)
	}
	s := &SMTPSender{from: from}
	switch u.Scheme {
	case "smtp":
	case "smtps":
		s.implicit = true
	default:
		return nil, fmt.Errorf("smtp url: scheme must be smtp or smtps, not %q", u.Scheme)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, fmt.Errorf("smtp url: host missing")
	}
	if port == "" {
		port = map[bool]string{false: "587", true: "465"}[s.implicit]
	}
	s.addr = net.JoinHostPort(host, port)
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		s.plainOK = true
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
	}
	if s.from == "" {
		return nil, fmt.Errorf("smtp: a sender address is required")
	}
	return s, nil
}

// Send implements Sender.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var c *smtp.Client
	var err error
	switch {
	case s.implicit:
		c, err = smtp.DialTLS(s.addr, nil)
	case s.plainOK:
		c, err = smtp.Dial(s.addr)
	default:
		c, err = smtp.DialStartTLS(s.addr, nil)
	}
	if err != nil {
		return fmt.Errorf("smtp dial %s: %w", s.addr, err)
	}
	defer c.Close()
	c.CommandTimeout = time.Until(deadline)
	c.SubmissionTimeout = time.Until(deadline)
	if s.user != "" {
		if err := c.Auth(sasl.NewPlainClient("", s.user, s.pass)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.SendMail(s.from, []string{m.To}, bytes.NewReader(s.render(m))); err != nil {
		return fmt.Errorf("smtp send to %s: %w", m.To, err)
	}
	return c.Quit()
}

func (s *SMTPSender) render(m Message) []byte {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := s.from[strings.LastIndex(s.from, "@")+1:]
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n",
		s.from, m.To, mime.QEncoding.Encode("utf-8", m.Subject), time.Now().Format(time.RFC1123Z), hex.EncodeToString(id), domain)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n"))
	return b.Bytes()
}
