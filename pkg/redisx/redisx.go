// Package redisx opens the Redis connection behind --redis-url and picks the
// backends (queue, locks, rate limits, console tokens) that go with it.
package redisx

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every key vmd writes, so one Redis can be shared
// with other programs (or other vmd clusters via ?prefix=).
const DefaultPrefix = "vmd:"

// Conn is a parsed --redis-url: the client options and the key prefix.
type Conn struct {
	Options *redis.Options
	Prefix  string
}

// Addr is host:port of the server, safe to print (no password).
func (c Conn) Addr() string { return c.Options.Addr }

// ParseURL reads a redis:// or rediss:// URL. Besides go-redis's own query
// options it takes prefix=<key prefix> (default DefaultPrefix). Errors never
// contain the password.
func ParseURL(raw string) (Conn, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error would echo the whole URL, password included.
		return Conn{}, fmt.Errorf("parse redis url: malformed url")
	}
	prefix := DefaultPrefix
	q := u.Query()
	if q.Has("prefix") {
		prefix = q.Get("prefix")
		q.Del("prefix")
		u.RawQuery = q.Encode()
	}
	opt, err := redis.ParseURL(u.String())
	if err != nil {
		return Conn{}, fmt.Errorf("parse redis url for %s: %s", u.Host, redact(err.Error(), u))
	}
	return Conn{Options: opt, Prefix: prefix}, nil
}

// redact removes the URL's password from a message, in case a library
// quotes it back.
func redact(msg string, u *url.URL) string {
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}

// Dial parses raw, connects and pings, so a wrong URL fails at start-up with
// the address in the message rather than at the first job.
func Dial(ctx context.Context, raw string) (*redis.Client, Conn, error) {
	c, err := ParseURL(raw)
	if err != nil {
		return nil, Conn{}, err
	}
	rdb := redis.NewClient(c.Options)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, Conn{}, fmt.Errorf("connect to redis at %s: %w", c.Addr(), err)
	}
	return rdb, c, nil
}
