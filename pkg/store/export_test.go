package store

import "context"

// Exec runs one statement on s, for tests that must make a state the API
// cannot (drifted counters, old feed entries).
func Exec(s Store, q string, args ...any) error {
	_, err := s.(*sqlStore).db.exec(context.Background(), q, args...)
	return err
}

// Query runs a statement through s's query and reads its rows, as a
// write with RETURNING does.
func Query(s Store, q string, args ...any) error {
	rs, err := s.(*sqlStore).db.query(context.Background(), q, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
	}
	return rs.Err()
}

// QueryRow runs a statement of one column through s's queryRow.
func QueryRow(s Store, q string, args ...any) error {
	var discard any
	return s.(*sqlStore).db.queryRow(context.Background(), q, args...).Scan(&discard)
}

var PlainSelect = plainSelect

// ViewCacheHits is how many view reads s answered from its cache.
func ViewCacheHits(s Store) uint64 { return s.(*sqlStore).vc.hits.Load() }

// ViewCacheLive reports whether s's view cache is in use.
func ViewCacheLive(s Store) bool { return s.(*sqlStore).vc.live.Load() }

// SetViewFillHook makes f run between each view read and its caching (nil: none).
func SetViewFillHook(s Store, f func()) {
	if f == nil {
		s.(*sqlStore).vc.afterRead.Store(nil)
		return
	}
	s.(*sqlStore).vc.afterRead.Store(&f)
}

// ListenerPID is the backend pid of s's views listener, 0 while it does
// not listen (PostgreSQL stores only).
func ListenerPID(s Store) uint32 { return s.(*sqlStore).listener.listeningPID() }

// SetListenerHook makes f run before each of the listener's connection attempts.
func SetListenerHook(s Store, f func()) { s.(*sqlStore).listener.beforeConnect.Store(&f) }

// ListenerDone reports whether s's listener goroutine has returned.
func ListenerDone(s Store) bool {
	select {
	case <-s.(*sqlStore).listener.done:
		return true
	default:
		return false
	}
}
