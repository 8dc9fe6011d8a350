// Package accounttest gives tests a real Argon2id password hasher with
// cheap cost parameters: the hashes are real PHC strings that Verify checks
// as in production, but each costs microseconds instead of tens of
// milliseconds, which adds up to most of a test package's time when every
// test signs up and logs in a few users. vmd itself never uses it.
package accounttest

import "github.com/vmdhq/vmd/pkg/account"

// Cheap are the parameters Hasher hashes with: Argon2's minimum memory.
var Cheap = account.Argon2Params{MemoryKiB: 8, Time: 1, Threads: 1}

// Hasher returns an account.Hasher with Cheap parameters, for
// account.Config.Hasher in tests.
func Hasher() *account.Hasher { return account.NewHasherWith(2, Cheap) }
