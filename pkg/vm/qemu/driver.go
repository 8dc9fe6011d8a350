package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmdhq/vmd/pkg/vm"
	"github.com/vmdhq/vmd/pkg/vm/qga"
)

// Config sets up a Driver. Zero values take the defaults noted.
type Config struct {
	// Layout says where VM files (DataDir) and sockets (RunDir) go; both required.
	Layout vm.Layout
	// Accel is "kvm" or "tcg"; resolve "auto" with ProbeAccel first. Default tcg.
	Accel string
	// QEMU and QEMUImg are the binaries; default qemu-system-x86_64 and qemu-img.
	QEMU    string
	QEMUImg string
	// User, if set, runs every guest's QEMU as this one user when vmd is root.
	User string
	// UIDs is the range each guest gets its own uid (and gid) from when vmd
	// is root and User is empty (default DefaultUIDs). Ignored when not root:
	// QEMU then runs as vmd's own user.
	UIDs UIDRange
	// StopTimeout is how long a stop waits for the guest to power down before quit (default 30 s).
	StopTimeout time.Duration
	// Logger gets what the driver cannot return (default slog.Default()).
	Logger *slog.Logger
	// EgressAllow is the private ranges guests may reach (vmd serve
	// --guest-egress-allow): guestnet.Policy.Allow of every guest network.
	EgressAllow []netip.Prefix
}

// Driver implements vm.Driver with one QEMU process per VM.
type Driver struct {
	cfg   Config
	log   *slog.Logger
	own   owners
	uidMu sync.Mutex // one uid claim at a time

	mu     sync.Mutex
	guests map[string]*guest
	notify func(vm.GuestEvent)
	stops  map[string]string // per VM: how its last Stop ended it (StopPath)
	closed bool
	quit   chan struct{} // closed by Close: stops watchers of adopted guests
}

var _ vm.Driver = (*Driver)(nil)

// guest is one live (or just dead) QEMU process.
type guest struct {
	id, owner string
	pid       int
	pidFile   string
	qmpPath   string
	exited    chan struct{} // closed once the process is gone and exit is set

	mu       sync.Mutex // guards mon, net, netEnded
	mon      Monitor
	net      *guestNet // nil for network none
	netEnded bool      // closeNet ran: no network may start any more

	poweredOff atomic.Bool  // QEMU said the guest shut itself down
	exit       vm.GuestExit // how it ended: written before exited closes, read after

	agent    *qga.Client   // the guest agent's one connection; set before the guest is known
	reset    chan struct{} // a RESET: readiness starts over (capacity 1)
	stopping chan struct{} // closed when a Stop begins: readiness is no longer watched
	stopOnce sync.Once
}

// New checks c and returns a Driver.
func New(c Config) (*Driver, error) {
	if c.Accel == "" {
		c.Accel = "tcg"
	}
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if c.QEMUImg == "" {
		c.QEMUImg = "qemu-img"
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Accel != "kvm" && c.Accel != "tcg" {
		return nil, fmt.Errorf("qemu driver: accel %q: want kvm or tcg", c.Accel)
	}
	if err := c.Layout.Check(len(vm.NewID())); err != nil {
		return nil, fmt.Errorf("qemu driver: %w", err)
	}
	own, err := newOwners(c.User, c.UIDs, c.Accel)
	if err != nil {
		return nil, fmt.Errorf("qemu driver: %w", err)
	}
	d := &Driver{cfg: c, log: c.Logger, own: own, guests: map[string]*guest{}, stops: map[string]string{}, quit: make(chan struct{})}
	for _, dir := range []string{filepath.Join(c.Layout.DataDir, vm.VMsDir), c.Layout.RunDir} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("qemu driver: %w", err)
		}
	}
	if own.shared != nil || own.perGuest {
		if err := reachable(filepath.Join(c.Layout.DataDir, vm.VMsDir)); err != nil {
			return nil, fmt.Errorf("qemu driver: data dir not reachable by the guests' uids: %w", err)
		}
		if err := reachable(c.Layout.RunDir); err != nil {
			return nil, fmt.Errorf("qemu driver: run dir not reachable by the guests' uids: %w", err)
		}
	}
	return d, nil
}

// reachable checks that every directory down to dir lets others through,
// as QEMU runs as another user than vmd.
func reachable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s has mode %o, others cannot pass", p, st.Mode().Perm())
		}
		if p == "/" {
			return nil
		}
	}
}

// Subscribe sets the function told about guest events.
func (d *Driver) Subscribe(fn func(vm.GuestEvent)) {
	d.mu.Lock()
	d.notify = fn
	d.mu.Unlock()
}

func (d *Driver) emit(e vm.GuestEvent) {
	d.mu.Lock()
	fn, closed := d.notify, d.closed
	d.mu.Unlock()
	if fn != nil && !closed {
		fn(e)
	}
}

// Close drops every QMP connection and forgets the guests; they keep running,
// for a later Driver (or vmd) to adopt.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.quit)
	gs := d.guests
	d.guests = map[string]*guest{}
	d.mu.Unlock()
	for _, g := range gs {
		g.closeMonitor()
		g.closeAgent()
		g.closeNet() // streams end; the guest keeps running and keeps its lease for the next vmd
	}
	return nil
}

func (d *Driver) get(id string) *guest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.guests[id]
}

func (d *Driver) forget(g *guest) {
	d.mu.Lock()
	if d.guests[g.id] == g {
		delete(d.guests, g.id)
	}
	d.mu.Unlock()
	g.closeMonitor()
	g.closeAgent()
}

func (g *guest) alive() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

func (g *guest) closeMonitor() {
	g.mu.Lock()
	m := g.mon
	g.mon = nil
	g.mu.Unlock()
	if m != nil {
		_ = m.Close()
	}
}

// Alive reports whether the driver knows a live process for the VM.
func (d *Driver) Alive(id string) bool {
	g := d.get(id)
	return g != nil && g.alive()
}

// PID returns the process id of a live guest (0 if none).
func (d *Driver) PID(id string) int {
	if g := d.get(id); g != nil && g.alive() {
		return g.pid
	}
	return 0
}

// invocation is where s's QEMU finds its files and sockets.
func (d *Driver) invocation(s Spec) Invocation {
	l := d.cfg.Layout
	inv := Invocation{Spec: s, Accel: d.cfg.Accel,
		Disk:    l.VMFile(s.OwnerID, s.ID, vm.DiskFile),
		Serial:  l.VMFile(s.OwnerID, s.ID, vm.SerialFile),
		PIDFile: l.VMFile(s.OwnerID, s.ID, vm.PIDFile),
		QMP:     l.Socket(s.ID, vm.QMPSocket),
		VNC:     l.Socket(s.ID, vm.VNCSocket),
		QGA:     l.Socket(s.ID, vm.QGASocket),
		Net:     l.Socket(s.ID, vm.NetSocket)}
	inv.SerialSock = l.Socket(s.ID, vm.SerialSocket)
	if seed := l.VMFile(s.OwnerID, s.ID, vm.SeedFile); fileExists(seed) {
		inv.Seed = seed
	}
	return inv
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// removeRuntime removes a guest's sockets, runtime dir and pid file.
func (d *Driver) removeRuntime(s Spec) error {
	return errors.Join(
		os.RemoveAll(d.cfg.Layout.RuntimeDir(s.ID)),
		ignoreNotExist(os.Remove(d.cfg.Layout.VMFile(s.OwnerID, s.ID, vm.PIDFile))))
}

func ignoreNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Launch starts the guest's QEMU in its own session (so it outlives vmd)
// as the guest's unprivileged uid, and returns once its QMP socket answers.
func (d *Driver) Launch(ctx context.Context, s Spec) error { return d.launch(ctx, s, "") }

// launch is Launch, at the memory snapshot loadvm when it is set.
func (d *Driver) launch(ctx context.Context, s Spec, loadvm string) error {
	if g := d.get(s.ID); g != nil {
		if g.alive() {
			return nil
		}
		d.forget(g) // its Exit must not answer for this launch
	}
	inv := d.invocation(s)
	inv.LoadVM = loadvm
	if err := inv.validate(); err != nil {
		return fmt.Errorf("launch %s: %w", s.ID, err)
	}
	if !fileExists(inv.Disk) {
		return fmt.Errorf("launch %s: disk %s: %w", s.ID, inv.Disk, fs.ErrNotExist)
	}
	if err := d.removeRuntime(s); err != nil {
		return fmt.Errorf("launch %s: clear stale files: %w", s.ID, err)
	}
	cred, err := d.guestCred(s)
	if err != nil {
		return fmt.Errorf("launch %s: give the guest its files: %w", s.ID, err)
	}
	rdir := d.cfg.Layout.RuntimeDir(s.ID)
	if err := os.Mkdir(rdir, 0o700); err != nil {
		return fmt.Errorf("launch %s: %w", s.ID, err)
	}
	if err := d.chown(cred, rdir); err != nil {
		return fmt.Errorf("launch %s: %w", s.ID, err)
	}
	logPath := d.cfg.Layout.VMFile(s.OwnerID, s.ID, vm.QEMULog)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("launch %s: %w", s.ID, err)
	}
	fmt.Fprintf(logf, "%s vmd: starting qemu\n", time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(d.cfg.QEMU, Args(inv)...)
	cmd.Dir = d.cfg.Layout.VMDir(s.OwnerID, s.ID)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Setsid rather than -daemonize, which the sandbox kills; no Pdeathsig, so guests outlive vmd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	serialFrom := serialSize(inv.Serial) // this boot's output starts here
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("launch %s: start %s: %w", s.ID, d.cfg.QEMU, err)
	}
	g := &guest{id: s.ID, owner: s.OwnerID, pid: cmd.Process.Pid, pidFile: inv.PIDFile, qmpPath: inv.QMP,
		exited: make(chan struct{})}
	go func() {
		werr := cmd.Wait()
		msg := "qemu exited"
		if werr != nil {
			msg = "qemu exited: " + werr.Error()
		}
		if tail := lastLine(logPath); tail != "" {
			msg += ": " + tail
		}
		d.ended(g, msg)
	}()
	if err := d.connect(ctx, g, 30*time.Second); err != nil {
		_ = syscall.Kill(g.pid, syscall.SIGKILL)
		<-g.exited
		_ = d.removeRuntime(s)
		if tail := lastLine(logPath); tail != "" {
			err = fmt.Errorf("%w: %s", err, tail)
		}
		return fmt.Errorf("launch %s: %w", s.ID, err)
	}
	if err := d.startNet(g, s, inv.Net); err != nil {
		_ = syscall.Kill(g.pid, syscall.SIGKILL)
		<-g.exited
		_ = d.removeRuntime(s)
		return fmt.Errorf("launch %s: %w", s.ID, err)
	}
	d.saveSerialFrom(s.ID, serialFrom)
	d.withAgent(g, inv, serialFrom)
	d.mu.Lock()
	d.guests[s.ID] = g
	d.mu.Unlock()
	return nil
}

// drainLimit bounds the wait, after QEMU's exit, for the rest of its QMP
// events: the SHUTDOWN that says why it exited is written before the exit
// but may not have been read yet.
const drainLimit = 2 * time.Second

// ended records how g's process ended, then marks it gone and tells the
// subscriber. The order matters: whoever sees the guest dead (Alive false)
// must already be able to ask Exit whether the guest powered itself off.
func (d *Driver) ended(g *guest, msg string) {
	g.mu.Lock()
	m := g.mon
	g.mu.Unlock()
	if m != nil {
		select {
		case <-m.Done():
		case <-time.After(drainLimit):
		}
	}
	g.closeNet()
	g.exit = vm.GuestExit{PoweredOff: g.poweredOff.Load(), Message: msg}
	if g.exit.PoweredOff {
		g.exit.Message = "guest powered off"
	}
	close(g.exited)
	g.closeAgent()
	d.emit(vm.GuestEvent{ID: g.id, Kind: vm.EventExited, Guest: g.exit.PoweredOff, Message: g.exit.Message})
}

// Exit says how the VM's last process ended, once it has.
func (d *Driver) Exit(id string) (vm.GuestExit, bool) {
	g := d.get(id)
	if g == nil || g.alive() {
		return vm.GuestExit{}, false
	}
	return g.exit, true
}

// connect waits up to limit for the guest's QMP socket and dials it.
func (d *Driver) connect(ctx context.Context, g *guest, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if fileExists(g.qmpPath) {
			if _, err := g.monitor(ctx, d); err == nil {
				return nil
			} else if ctx.Err() != nil {
				return err
			}
		}
		select {
		case <-g.exited:
			return errors.New("qemu exited during start")
		case <-ctx.Done():
			return fmt.Errorf("qmp socket %s: %w", g.qmpPath, ctx.Err())
		case <-tick.C:
		}
	}
}

// monitor returns the guest's QMP connection, dialling again if it broke.
func (g *guest) monitor(ctx context.Context, d *Driver) (Monitor, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mon != nil {
		select {
		case <-g.mon.Done():
			g.mon = nil
		default:
			return g.mon, nil
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	m, err := dialMonitor(dctx, g.qmpPath, func(e Event) {
		ge := vm.GuestEvent{ID: g.id, Kind: e.Name}
		if b, ok := e.Data["guest"].(bool); ok {
			ge.Guest = b
		}
		if r, ok := e.Data["reason"].(string); ok {
			ge.Message = r
		}
		if poweredOff(ge) {
			g.poweredOff.Store(true)
		}
		if ge.Kind == "RESET" && g.reset != nil {
			select {
			case g.reset <- struct{}{}:
			default:
			}
		}
		d.emit(ge)
	})
	if err != nil {
		return nil, err
	}
	g.mon = m
	return m, nil
}

// poweredOff reports a SHUTDOWN the guest asked for itself (ACPI poweroff
// from inside; QEMU says reason guest-shutdown). A guest reboot is a RESET
// (QEMU runs without -no-reboot), a panic is not a wish to be off.
func poweredOff(e vm.GuestEvent) bool {
	return e.Kind == "SHUTDOWN" && e.Guest && e.Message == "guest-shutdown"
}

// Status is query-status's answer.
func (d *Driver) Status(ctx context.Context, id string) (string, error) {
	g := d.get(id)
	if g == nil || !g.alive() {
		return "", fmt.Errorf("status %s: no running guest", id)
	}
	m, err := g.monitor(ctx, d)
	if err != nil {
		return "", fmt.Errorf("status %s: %w", id, err)
	}
	st, err := m.Status(ctx)
	if err != nil {
		return "", fmt.Errorf("status %s: %w", id, err)
	}
	return st, nil
}

// SendKey presses keys together on the guest's keyboard and lets them go,
// as a console's "send Ctrl-Alt-Del" does. Keys are QEMU qcodes: "ctrl",
// "alt", "delete", "a", "ret", …
func (d *Driver) SendKey(ctx context.Context, id string, keys ...string) error {
	g := d.get(id)
	if g == nil || !g.alive() {
		return fmt.Errorf("send key %s: no running guest", id)
	}
	m, err := g.monitor(ctx, d)
	if err != nil {
		return fmt.Errorf("send key %s: %w", id, err)
	}
	type keyValue struct {
		Type string `json:"type"`
		Data string `json:"data"`
	}
	kv := make([]keyValue, len(keys))
	for i, k := range keys {
		kv[i] = keyValue{Type: "qcode", Data: k}
	}
	if err := m.ExecuteArgs(ctx, "send-key", map[string]any{"keys": kv}); err != nil {
		return fmt.Errorf("send key %s: %w", id, err)
	}
	return nil
}

// Adopt takes over a guest an earlier vmd left running.
func (d *Driver) Adopt(ctx context.Context, s Spec) (bool, error) {
	if d.Alive(s.ID) {
		return true, nil
	}
	inv := d.invocation(s)
	pid, ok := ownProcess(inv.PIDFile)
	if !ok {
		// Nothing of ours runs: whatever is left in the runtime dir is stale.
		if err := d.removeRuntime(s); err != nil {
			return false, fmt.Errorf("adopt %s: %w", s.ID, err)
		}
		return false, nil
	}
	g := &guest{id: s.ID, owner: s.OwnerID, pid: pid, pidFile: inv.PIDFile, qmpPath: inv.QMP,
		exited: make(chan struct{})}
	if _, err := g.monitor(ctx, d); err != nil {
		// Alive but not answering: keep it, Status dials again later.
		d.log.Warn("adopted guest's monitor does not answer", "vm", s.ID, "pid", pid, "err", err)
	}
	if err := d.startNet(g, s, inv.Net); err != nil {
		return false, fmt.Errorf("adopt %s: %w", s.ID, err)
	}
	// Not our child, so no Wait: watch /proc for its end instead. Started
	// after the dial, so a SHUTDOWN the monitor reads is seen by ended.
	go d.watch(g)
	// Where its boot's serial output began, if the launching vmd kept it.
	d.withAgent(g, inv, d.loadSerialFrom(s.ID))
	d.mu.Lock()
	d.guests[s.ID] = g
	d.mu.Unlock()
	return true, nil
}

// watch closes g.exited once an adopted guest's process is gone.
func (d *Driver) watch(g *guest) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-d.quit:
			return
		case <-t.C:
		}
		if pid, ok := ownProcess(g.pidFile); !ok || pid != g.pid {
			// QEMU removes its pid file before it has finished exiting;
			// "exited" must mean the process is really gone.
			for i := 0; i < 200 && running(g.pid); i++ { // up to 10 s: a loaded host may take its time
				time.Sleep(50 * time.Millisecond)
			}
			d.ended(g, "qemu process is gone")
			return
		}
	}
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// ownProcess reads a pid file and trusts it only if that process's command
// line names the same pid file (Proxmox's check), so a reused pid or a
// zombie is not mistaken for our guest.
func ownProcess(pidFile string) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	args := bytes.Split(cl, []byte{0})
	for i := 0; i+1 < len(args); i++ {
		if string(args[i]) == "-pidfile" && string(args[i+1]) == pidFile {
			return pid, true
		}
	}
	return 0, false
}

// Stop powers the guest down: system_powerdown and a wait (skipped once
// force is closed), then quit, then SIGKILL.
func (d *Driver) Stop(ctx context.Context, id string, force <-chan struct{}) error {
	g := d.get(id)
	if g == nil {
		return nil
	}
	defer func() {
		d.forget(g)
		if !g.alive() {
			_ = os.RemoveAll(filepath.Dir(g.qmpPath))
			_ = os.Remove(g.pidFile)
		}
	}()
	if !g.alive() {
		return nil
	}
	wait := func(limit time.Duration, force <-chan struct{}) bool {
		t := time.NewTimer(limit)
		defer t.Stop()
		select {
		case <-g.exited:
			return true
		case <-t.C:
		case <-force:
		case <-ctx.Done():
		}
		return !g.alive()
	}
	if g.stopping != nil {
		g.stopOnce.Do(func() { close(g.stopping) })
	}
	// Each QMP step gets its own short deadline: a hung QEMU must not hold the stop up.
	step := func(cmd string) bool {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		m, err := g.monitor(qctx, d)
		return err == nil && m.Execute(qctx, cmd) == nil
	}
	select {
	case <-force:
	default:
		// The agent first: a guest without an ACPI handler (or still
		// booting) shuts down cleanly when asked from inside. It gets half
		// the stop timeout before the power button joins in.
		if d.askShutdown(ctx, g) && d.awaitPowerdown(ctx, g, nil, force, d.cfg.StopTimeout/2) {
			d.noteStop(id, "guest agent (guest-shutdown)")
			return nil
		}
		if step("system_powerdown") && d.awaitPowerdown(ctx, g, step, force, d.cfg.StopTimeout) {
			d.noteStop(id, "ACPI power button")
			return nil
		}
	}
	if g.alive() && step("quit") && wait(3*time.Second, nil) {
		d.noteStop(id, "quit")
		return nil
	}
	if !g.alive() {
		d.noteStop(id, "quit")
		return nil
	}
	d.noteStop(id, "SIGKILL")
	// quit went unanswered (or QEMU is hung): kill it, as Incus does.
	if err := syscall.Kill(g.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: kill %d: %w", id, g.pid, err)
	}
	select {
	case <-g.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("stop %s: pid %d survived SIGKILL", id, g.pid)
	}
}

// awaitPowerdown waits StopTimeout for the guest to go, pressing the power
// button again now and then: a guest still booting has no handler for the
// first press yet, and ACPI does not queue it.
func (d *Driver) awaitPowerdown(ctx context.Context, g *guest, step func(string) bool, force <-chan struct{}, limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	again := time.NewTicker(3 * time.Second)
	defer again.Stop()
	for {
		select {
		case <-g.exited:
			return true
		case <-again.C:
			if step != nil { // nil: waiting on the agent's shutdown, no button
				step("system_powerdown")
			}
		case <-deadline.C:
			return !g.alive()
		case <-force:
			return !g.alive()
		case <-ctx.Done():
			return !g.alive()
		}
	}
}

// closedChan is a force channel that is already closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Destroy kills v's process if any and removes its files. It is idempotent.
func (d *Driver) Destroy(ctx context.Context, s Spec) error {
	if d.get(s.ID) == nil {
		if _, err := d.Adopt(ctx, s); err != nil {
			d.log.Warn("destroy: adopt", "vm", s.ID, "err", err)
		}
	}
	var errs []error
	if err := d.Stop(ctx, s.ID, closedChan); err != nil {
		errs = append(errs, err)
	}
	d.StopPath(s.ID) // nobody asks how a destroyed guest went
	errs = append(errs, os.RemoveAll(d.cfg.Layout.RuntimeDir(s.ID)),
		os.RemoveAll(d.cfg.Layout.VMDir(s.OwnerID, s.ID)))
	// The owner's dir goes with its last VM; failing because it is not empty is fine.
	_ = os.Remove(filepath.Dir(d.cfg.Layout.VMDir(s.OwnerID, s.ID)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy %s: %w", s.ID, err)
	}
	return nil
}

// lastLine is the last non-empty line of a small log, for error messages.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-4096, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
