package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmdhq/vmd/internal/testutil"
	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
	"github.com/vmdhq/vmd/pkg/store/storetest"
)

// TestNginxFrontsVMD runs deploy/nginx/vmd.conf.template in Debian's nginx,
// with TLS, in front of a real vmd: health, the HTTP redirect, hidden
// metrics, sign-up and login through /api/, a VM created through it, its
// console WebSocket reaching the guest's screen, and the auth rate limit.
// It then scrapes vmd's own /metrics for the create's traces.
func TestNginxFrontsVMD(t *testing.T) {
	parallel(t, 1)
	nginxBin, err := exec.LookPath("nginx")
	if err != nil {
		if nginxBin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			t.Fatal("nginx missing: run `make deps` (hack/install-deps.sh installs it)")
		}
	}
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	httpsAddr, httpAddr := freeAddr(t), freeAddr(t)
	publicURL := "https://" + httpsAddr
	v := startVMD(t, storetest.Backends()[0], "--public-url", publicURL)
	startNginx(t, nginxBin, dir, map[string]string{
		"SERVER_NAME":  "127.0.0.1",
		"HTTPS_LISTEN": httpsAddr,
		"HTTP_LISTEN":  httpAddr,
		"VMD_UPSTREAM": strings.TrimPrefix(v.URL, "http://"),
		"TLS_CERT":     certFile,
		"TLS_KEY":      keyFile,
	}, httpsAddr)

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(url string) (*http.Response, string) {
		t.Helper()
		res, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	t.Run("healthz over TLS", func(t *testing.T) {
		res, body := get(publicURL + "/healthz")
		if res.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
			t.Fatalf("healthz: %d %s", res.StatusCode, body)
		}
		if res.Header.Get("Strict-Transport-Security") == "" {
			t.Error("no HSTS header: vmd did not see its https public URL")
		}
		if id := res.Header.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
			t.Errorf("X-Request-Id %q is not nginx's $request_id", id)
		}
	})
	t.Run("plain http redirects", func(t *testing.T) {
		res, _ := get("http://" + httpAddr + "/api/v1/version")
		if res.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(res.Header.Get("Location"), "https://") {
			t.Fatalf("http: %d Location %q", res.StatusCode, res.Header.Get("Location"))
		}
	})
	t.Run("metrics hidden", func(t *testing.T) {
		if res, _ := get(publicURL + "/metrics"); res.StatusCode != http.StatusNotFound {
			t.Fatalf("/metrics through nginx: %d", res.StatusCode)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	anon := client.New(publicURL, "", client.WithHTTPClient(hc))
	const email, pw = "ada@example.com", "correct horse battery"
	if _, err := anon.Signup(ctx, email, pw); err != nil {
		t.Fatalf("signup through nginx: %v", err)
	}
	if err := anon.Verify(ctx, v.SMTP.WaitFor(t, email, 10*time.Second).Token()); err != nil {
		t.Fatalf("verify through nginx: %v", err)
	}
	lr, err := anon.Login(ctx, email, pw)
	if err != nil {
		t.Fatalf("login through nginx: %v", err)
	}
	ada := client.New(publicURL, lr.Token, client.WithHTTPClient(hc))
	created, err := ada.CreateVM(ctx, api.CreateVMRequest{Name: "web", Template: "tiny", MemoryMB: 128})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Minute, "vm web running", func() bool {
		got, err := ada.GetVM(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if got.State == api.StateError || ctx.Err() != nil {
			t.Fatalf("vm: %s %s", got.State, got.Message)
		}
		return got.State == api.StateRunning
	})
	v.waitSerial(t, *created, "vmd-tiny: booted", 90*time.Second)

	t.Run("console websocket", func(t *testing.T) {
		res, err := ada.Console(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.WSURL, "wss://"+httpsAddr+"/api/v1/vms/") {
			t.Fatalf("ws_url = %q", res.WSURL)
		}
		conn, err := ada.DialConsole(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		screen(ctx, t, conn)
	})

	t.Run("vmd metrics after create", func(t *testing.T) {
		res, err := http.Get(v.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		for _, want := range []string{
			`vm_provision_duration_seconds_count{result="ok"} 1`,
			"vm_boot_success_total 1",
			"vm_boot_failure_total 0",
			`db_query_duration_seconds_count{op="create_vm"} 1`,
			`db_query_duration_seconds_count{op="get_session"}`,
			"controller_reconcile_duration_seconds_count",
			"queue_depth 0",
			"go_goroutines",
			"process_resident_memory_bytes",
		} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})

	// Last: it exhausts this client address's auth budget.
	t.Run("auth rate limit", func(t *testing.T) {
		limited := 0
		for i := 0; i < 40 && limited == 0; i++ {
			req, _ := http.NewRequest(http.MethodPost, publicURL+"/api/v1/auth/login",
				strings.NewReader(`{"email":"nobody@example.com","password":"wrong password"}`))
			req.Header.Set("Content-Type", "application/json")
			res, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			// nginx answers with its own HTML page; vmd's 429 would be JSON.
			if res.StatusCode == http.StatusTooManyRequests && strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				limited = i + 1
			}
		}
		if limited == 0 {
			t.Fatal("40 logins in a row were never limited by nginx")
		}
		// The rate is 10 a minute with a burst of 20 after the 3 calls above.
		if limited < 15 {
			t.Errorf("limited after %d requests, want the burst of 20 to pass first", limited)
		}
		if res, _ := get(publicURL + "/api/v1/version"); res.StatusCode != 200 {
			t.Errorf("other API routes limited too: %d", res.StatusCode)
		}
	})
}

// startNginx renders the deploy template with vars and runs nginx on it,
// in the foreground, with every path of its own under dir.
func startNginx(t *testing.T, bin, dir string, vars map[string]string, waitAddr string) {
	t.Helper()
	tpl, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "nginx", "vmd.conf.template"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(tpl)
	for k, val := range vars {
		conf = strings.ReplaceAll(conf, "${"+k+"}", val)
	}
	if i := strings.Index(conf, "${"); i >= 0 {
		t.Fatalf("template variable left unrendered: %.40s", conf[i:])
	}
	site := filepath.Join(dir, "vmd.conf")
	if err := os.WriteFile(site, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	main := `daemon off;
pid ` + dir + `/nginx.pid;
error_log ` + dir + `/error.log info;
events { worker_connections 256; }
http {
    access_log ` + dir + `/access.log;
    client_body_temp_path ` + dir + `/body;
    proxy_temp_path ` + dir + `/proxy;
    fastcgi_temp_path ` + dir + `/fastcgi;
    uwsgi_temp_path ` + dir + `/uwsgi;
    scgi_temp_path ` + dir + `/scgi;
    include ` + site + `;
}
`
	if os.Geteuid() == 0 {
		// As root nginx's workers would switch to nobody, who cannot enter the test's temp dir.
		main = "user root;\n" + main
	}
	mainFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainFile, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", mainFile).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", mainFile)
	var logb testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful: workers finish and exit with the master
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s\n%s", b, logb.String())
		}
	})
	testutil.Eventually(t, 10*time.Second, "nginx listening on "+waitAddr, func() bool {
		if c, err := net.Dial("tcp", waitAddr); err == nil {
			c.Close()
			return true
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited: %s", logb.String())
		default:
		}
		return false
	})
}

// selfSignedCert writes a certificate for 127.0.0.1 and localhost and its
// key into dir, and returns their paths and a pool that trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "vmd e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
