package store

import "context"

// Exec runs one statement on s, for tests that must make a state the API
// cannot (drifted counters, old feed entries).
func Exec(s Store, q string, args ...any) error {
	_, err := s.(*sqlStore).db.exec(context.Background(), q, args...)
	return err
}
