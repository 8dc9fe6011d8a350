package server_test

import (
	"os"
	"testing"

	"github.com/vmdhq/vmd/internal/testutil"
)

// TestMain runs the tests StoreParallel at a time: they wait on
// PostgreSQL, not on the CPU (docs/TESTING.md, "How long the tests take").
func TestMain(m *testing.M) { os.Exit(testutil.MainParallel(m, testutil.StoreParallel)) }
