package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Monitor is what the driver asks of a guest's QMP socket. It hides
// go-qemu's SocketMonitor, whose faults (no timeouts, blocking when events
// are not read, no request ids) are handled here once.
type Monitor interface {
	// Status is query-status's "status": running, paused, shutdown, …
	Status(ctx context.Context) (string, error)
	// Execute runs one command without arguments (system_powerdown, quit, …).
	Execute(ctx context.Context, cmd string) error
	// ExecuteArgs runs one command with arguments (marshalled to JSON).
	ExecuteArgs(ctx context.Context, cmd string, args any) error
	// Run runs one command (args nil for none) and returns its raw reply.
	Run(ctx context.Context, cmd string, args any) ([]byte, error)
	// Done is closed when the connection ends (QEMU exited or Close).
	Done() <-chan struct{}
	Close() error
}

// Event is a QMP event the driver passes on.
type Event struct {
	Name string         // SHUTDOWN, STOP, RESET, POWERDOWN, RESUME, …
	Data map[string]any // the event's data, e.g. {"guest": true} for SHUTDOWN
}

// monitor holds one long-lived QMP connection and sends one command at a time.
type monitor struct {
	mu   sync.Mutex // one command at a time; replies carry no id to match them by
	mon  *qmp.SocketMonitor
	done chan struct{}
	once sync.Once
}

// dialMonitor connects to a QMP socket and does the capabilities handshake
// within ctx. Events go to onEvent from one goroutine until the connection ends.
func dialMonitor(ctx context.Context, path string, onEvent func(Event)) (*monitor, error) {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	sm, err := qmp.NewSocketMonitor("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial qmp %s: %w", path, err)
	}
	// Connect has no timeout of its own: a QEMU that is stopped, or busy with
	// another client, would block it for ever. Closing the socket unblocks it.
	errc := make(chan error, 1)
	go func() { errc <- sm.Connect() }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		_ = sm.Disconnect()
		<-errc
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("qmp handshake %s: %w", path, err)
	}
	events, err := sm.Events(context.Background())
	if err != nil {
		_ = sm.Disconnect()
		return nil, fmt.Errorf("qmp events %s: %w", path, err)
	}
	m := &monitor{mon: sm, done: make(chan struct{})}
	// go-qemu blocks replies behind unread events, so they are always drained.
	go func() {
		defer m.once.Do(func() { close(m.done) })
		for e := range events {
			if onEvent != nil {
				onEvent(Event{Name: e.Event, Data: e.Data})
			}
		}
	}()
	return m, nil
}

func (m *monitor) Done() <-chan struct{} { return m.done }

// Close ends the connection; QEMU keeps running.
func (m *monitor) Close() error {
	err := m.mon.Disconnect()
	<-m.done
	return err
}

var errMonitorClosed = errors.New("qmp connection closed")

// run sends one command and waits for its reply within ctx. A command that
// times out leaves the stream in an unknown state, so the connection is
// dropped and the caller dials again.
func (m *monitor) run(ctx context.Context, cmd string, args any) ([]byte, error) {
	select {
	case <-m.done:
		return nil, errMonitorClosed
	default:
	}
	b, err := json.Marshal(qmp.Command{Execute: cmd, Args: args})
	if err != nil {
		return nil, err
	}
	type result struct {
		b   []byte
		err error
	}
	rc := make(chan result, 1)
	go func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		out, err := m.mon.Run(b)
		rc <- result{out, err}
	}()
	select {
	case r := <-rc:
		if r.err != nil {
			select {
			case <-m.done:
				return nil, fmt.Errorf("qmp %s: %w", cmd, errMonitorClosed)
			default:
			}
			return nil, fmt.Errorf("qmp %s: %w", cmd, r.err)
		}
		return r.b, nil
	case <-ctx.Done():
		_ = m.Close()
		return nil, fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

func (m *monitor) Execute(ctx context.Context, cmd string) error {
	_, err := m.run(ctx, cmd, nil)
	return err
}

func (m *monitor) ExecuteArgs(ctx context.Context, cmd string, args any) error {
	_, err := m.run(ctx, cmd, args)
	return err
}

func (m *monitor) Run(ctx context.Context, cmd string, args any) ([]byte, error) {
	return m.run(ctx, cmd, args)
}

func (m *monitor) Status(ctx context.Context) (string, error) {
	b, err := m.run(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var r struct {
		Return struct {
			Status string `json:"status"`
		} `json:"return"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("qmp query-status: %w", err)
	}
	return r.Return.Status, nil
}
