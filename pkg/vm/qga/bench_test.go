package qga_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/vmdhq/vmd/pkg/vm/qga"
)

// The benchmarks run against the host's qemu-ga (see hostAgent): the
// figures are the client's and the agent's cost without a guest, an upper
// bound for what a TCG guest's virtio-serial port allows.

func BenchmarkExecTrue(b *testing.B) {
	a := startHostAgent(b)
	c := a.client(b, qga.Options{})
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := c.Exec(ctx, qga.ExecRequest{Path: "/bin/true"})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("exec true: %+v, %v", res, err)
		}
	}
}

const benchFile = 32 << 20

func BenchmarkUpload(b *testing.B) {
	a := startHostAgent(b)
	c := a.client(b, qga.Options{})
	data := benchData()
	p := filepath.Join(a.Dir, "up")
	b.SetBytes(benchFile)
	for b.Loop() {
		if _, err := c.Upload(context.Background(), p, bytes.NewReader(data), 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDownload(b *testing.B) {
	a := startHostAgent(b)
	c := a.client(b, qga.Options{})
	p := filepath.Join(a.Dir, "down")
	if _, err := c.Upload(context.Background(), p, bytes.NewReader(benchData()), 0, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchFile)
	for b.Loop() {
		if _, err := c.Download(context.Background(), p, io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func benchData() []byte {
	data := make([]byte, benchFile)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(data)
	return data
}
