package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// privatePostgres is a PostgreSQL server of the test's own, so the test may
// stop and start it without disturbing the shared one other tests use.
type privatePostgres struct {
	t    testing.TB
	bin  string // directory of initdb, pg_ctl and postgres
	dir  string // socket dir; data/ and log below it
	port int
	URL  string
}

// postgresBinDir is the newest /usr/lib/postgresql/*/bin holding pg_ctl.
func postgresBinDir(t testing.TB) string {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(found) == 0 {
		t.Fatal("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install postgresql (make deps)")
	}
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[j]))))
		return vi < vj
	})
	return filepath.Dir(found[len(found)-1])
}

// startPrivatePostgres initialises a cluster with trust auth in a temp dir
// and starts it on a free loopback port. PostgreSQL refuses to run as root,
// so as root it runs as the postgres user.
func startPrivatePostgres(t testing.TB) *privatePostgres {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "vmd-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &privatePostgres{t: t, bin: postgresBinDir(t), dir: dir}
	t.Cleanup(func() {
		// immediate: the test is over and the data is thrown away.
		_ = p.ctl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user to run PostgreSQL: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	_, portStr, _ := net.SplitHostPort(freeAddr(t))
	p.port, _ = strconv.Atoi(portStr)
	if out, err := p.cmd("initdb", "-D", p.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	p.start()
	return p
}

func (p *privatePostgres) data() string { return filepath.Join(p.dir, "data") }

// cmd runs one of the server binaries, as the postgres user when root.
func (p *privatePostgres) cmd(name string, args ...string) *exec.Cmd {
	bin := filepath.Join(p.bin, name)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	return exec.Command(bin, args...)
}

func (p *privatePostgres) ctl(args ...string) error {
	args = append(args, "-D", p.data(), "-w", "-t", "60")
	out, err := p.cmd("pg_ctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (p *privatePostgres) start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", p.port, p.dir)
	if err := p.ctl("start", "-o", opts, "-l", filepath.Join(p.dir, "log")); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("%v\nserver log:\n%s", err, log)
	}
}

func (p *privatePostgres) stop() {
	p.t.Helper()
	if err := p.ctl("stop", "-m", "fast"); err != nil {
		p.t.Fatal(err)
	}
}

type probe struct {
	code int
	body map[string]string
}

func getProbe(t testing.TB, url string) probe {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	res, err := hc.Get(url)
	if err != nil {
		return probe{code: -1}
	}
	defer res.Body.Close()
	p := probe{code: res.StatusCode}
	_ = json.NewDecoder(res.Body).Decode(&p.body)
	return p
}

// waitProbe polls url until it answers want, or fails the test after d.
func waitProbe(t testing.TB, url string, want int, d time.Duration) probe {
	t.Helper()
	var last probe
	if !testutil.WaitFor(d, func() bool { last = getProbe(t, url); return last.code == want }) {
		t.Fatalf("%s: still %d %v after %s, want %d", url, last.code, last.body, d, want)
	}
	return last
}

// TestReadyzFollowsPostgres stops and restarts the PostgreSQL vmd runs on:
// /readyz turns 503 naming the store while /healthz stays 200, then the
// same vmd process (not restarted) is ready again and serves the API.
func TestReadyzFollowsPostgres(t *testing.T) {
	parallel(t, 1)
	pg := startPrivatePostgres(t)
	v := startVMD(t, storetest.Backend{Name: "postgres", New: func(testing.TB) (string, string) { return pg.URL, "" }})
	const email, password = "ready@example.com", "a long enough password"
	if out, code := v.admin(t, password+"\n", "user", "add", email, "--password-stdin"); code != 0 {
		t.Fatalf("vmd user add: %d %s", code, out)
	}
	ctx := context.Background()
	lr, err := client.New(v.URL, "").Login(ctx, email, password)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(v.URL, lr.Token, client.WithTimeout(10*time.Second))
	if _, err := c.Me(ctx); err != nil {
		t.Fatal(err)
	}
	if p := getProbe(t, v.URL+"/readyz"); p.code != 200 || p.body["store"] != "ok" {
		t.Fatalf("readyz before: %d %v", p.code, p.body)
	}

	pg.stop()
	down := time.Now()
	p := waitProbe(t, v.URL+"/readyz", http.StatusServiceUnavailable, 10*time.Second)
	t.Logf("readyz 503 %s after the stop: %v", time.Since(down).Round(time.Millisecond), p.body)
	if p.body["store"] != "unreachable" {
		t.Errorf("readyz body %v: want store=unreachable", p.body)
	}
	// Stay down past a node heartbeat (2 s) so vmd's background writers fail
	// too: the outage's length is the subject, so this one sleeps.
	for range 6 {
		time.Sleep(500 * time.Millisecond)
		if p := getProbe(t, v.URL+"/readyz"); p.code != http.StatusServiceUnavailable {
			t.Errorf("readyz while the store is down: %d %v, want 503", p.code, p.body)
		}
		if h := getProbe(t, v.URL+"/healthz"); h.code != http.StatusOK {
			t.Errorf("healthz while the store is down: %d, want 200", h.code)
		}
	}
	if _, err := c.Me(ctx); client.ErrorCode(err) != "unavailable" {
		t.Errorf("GET /me with the store down: %v, want 503 unavailable", err)
	}

	pg.start()
	up := time.Now()
	p = waitProbe(t, v.URL+"/readyz", http.StatusOK, 30*time.Second)
	t.Logf("readyz 200 %s after the start: %v", time.Since(up).Round(time.Millisecond), p.body)
	if p.body["store"] != "ok" {
		t.Errorf("readyz body %v: want store=ok", p.body)
	}
	// Several calls, so a pool that kept some dead connections would show.
	for i := range 20 {
		if _, err := c.Me(ctx); err != nil {
			t.Fatalf("GET /me #%d after postgres came back: %v", i, err)
		}
	}
	if _, err := client.New(v.URL, "").Login(ctx, email, password); err != nil {
		t.Fatalf("login after postgres came back: %v", err)
	}
	select {
	case <-v.exited:
		t.Fatalf("vmd exited while postgres was down:\n%s", v.log.String())
	default:
	}
	if os.Getenv("VMD_TEST_SHOW_LOG") != "" {
		t.Logf("vmd log:\n%s", v.log.String())
	}
}
