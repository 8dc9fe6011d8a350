package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/store"
)

// PlaceHeader carries a node's placement decision to the node chosen, so
// that node creates the VM itself instead of placing it again. It is
// signed with the shared secret: a client cannot pick a node by sending it.
const PlaceHeader = "X-Vmd-Place-On"

// placeTTL bounds how long a signed placement may be replayed.
const placeTTL = time.Minute

type forwarder struct {
	r  *Registry
	tr http.RoundTripper
}

func newForwarder(r *Registry) *forwarder {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 2 * time.Minute // a create provisions before it answers
	return &forwarder{r: r, tr: tr}
}

func (r *Registry) mac(node string, unix int64) string {
	m := hmac.New(sha256.New, r.cfg.Secret)
	fmt.Fprintf(m, "vmd-place\x00%s\x00%d", node, unix)
	return hex.EncodeToString(m.Sum(nil))
}

// SignPlacement returns a PlaceHeader value naming node.
func (r *Registry) SignPlacement(node string) string {
	now := r.cfg.Now().Unix()
	return node + ";" + strconv.FormatInt(now, 10) + ";" + r.mac(node, now)
}

// VerifyPlacement reports whether h is a fresh, correctly signed placement
// on this node.
func (r *Registry) VerifyPlacement(h string) bool {
	parts := strings.Split(h, ";")
	if len(parts) != 3 || parts[0] != r.cfg.Name {
		return false
	}
	unix, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return false
	}
	if age := r.cfg.Now().Sub(time.Unix(unix, 0)); age > placeTTL || age < -placeTTL {
		return false
	}
	return hmac.Equal([]byte(parts[2]), []byte(r.mac(parts[0], unix)))
}

// Forward proxies req, path, body and credentials unchanged, to node's vmd
// and copies its answer to w; WebSocket upgrades pass through. modify, if
// set, may edit the answer. When the node cannot be reached (or modify
// fails) nothing is written and Forward returns a 502 *api.StatusError for
// the server's error mapper to answer, so the caller gets the API's error
// shape with this request's id.
func (r *Registry) Forward(w http.ResponseWriter, req *http.Request, node string, modify func(*http.Response) error) error {
	unreachable := &api.StatusError{Status: http.StatusBadGateway, Code: api.CodeUnavailable,
		Message: fmt.Sprintf("node %s, which runs this vm, is unreachable; try again shortly", node)}
	n, err := r.cfg.Store.GetNode(req.Context(), node)
	if errors.Is(err, store.ErrNotFound) {
		r.log.Warn("cluster: forward to a node with no record", "node", node)
		return unreachable
	}
	if err != nil {
		return fmt.Errorf("forward to node %s: %w", node, err)
	}
	target, err := url.Parse(n.AdvertiseURL)
	if err != nil {
		r.log.Warn("cluster: forward", "node", node, "advertise_url", n.AdvertiseURL, "err", err)
		return unreachable
	}
	var failed error
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath = pr.In.URL.Path, pr.In.URL.RawPath
			pr.Out.Header.Set("X-Forwarded-By", r.cfg.Name)
		},
		Transport:      r.fw.tr,
		ModifyResponse: modify,
		// ReverseProxy calls this before it writes anything to w.
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, err error) { failed = err },
	}
	p.ServeHTTP(w, req)
	if failed != nil {
		r.log.Warn("cluster: forward", "node", node, "err", failed)
		return unreachable
	}
	return nil
}
