package ctl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/internal/version"
)

// restClient calls the members' REST API as patronictl's PatroniRequest:
// the member's api_url with its path replaced by the endpoint, a JSON
// body, and basic auth from ctl.authentication or restapi.authentication.
type restClient struct {
	http     *http.Client
	user     string
	password string
	auth     bool
}

// restResponse is a member's answer.
type restResponse struct {
	Status int
	Body   []byte
}

func (r *restResponse) text() string { return string(r.Body) }

func (a *App) restClient() (*restClient, error) {
	if a.rest != nil {
		return a.rest, nil
	}
	s, err := a.load()
	if err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.Insecure} //nolint:gosec // -k / ctl.insecure, as patronictl
	if s.RestCACert != "" {
		pem, err := os.ReadFile(s.RestCACert)
		if err != nil {
			return nil, fmt.Errorf("reading the REST API CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the REST API CA file %s holds no PEM certificate", s.RestCACert)
		}
		tlsCfg.RootCAs = pool
	}
	if s.RestCert != "" {
		key := s.RestKey
		if key == "" {
			key = s.RestCert
		}
		pair, err := tls.LoadX509KeyPair(s.RestCert, key)
		if err != nil {
			return nil, fmt.Errorf("loading the REST API client certificate: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.Proxy = nil
	a.rest = &restClient{
		http:     &http.Client{Transport: tr},
		user:     s.RestUser,
		password: s.RestPassword,
		auth:     s.RestAuth,
	}
	return a.rest, nil
}

// endpointURL is the member's api_url with the path replaced by endpoint.
func endpointURL(m *dcs.Member, endpoint string) (string, error) {
	if m == nil || m.APIURL == "" {
		name := "?"
		if m != nil {
			name = m.Name
		}
		return "", fmt.Errorf("member %s has no api_url", name)
	}
	u, err := url.Parse(m.APIURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("member %s has an invalid api_url %q", m.Name, m.APIURL)
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/" + strings.TrimPrefix(endpoint, "/")}).String(), nil
}

// request calls one member. body nil sends no body. An error is a call
// that got no HTTP answer (no api_url, refused, timed out).
func (a *App) request(ctx context.Context, m *dcs.Member, method, endpoint string, body any, timeout time.Duration) (*restResponse, error) {
	c, err := a.restClient()
	if err != nil {
		return nil, err
	}
	u, err := endpointURL(m, endpoint)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = a.RESTTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "pgwardenctl/"+version.Version)
	if c.auth {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	return &restResponse{Status: resp.StatusCode, Body: data}, nil
}

// getJSON GETs an endpoint and decodes its JSON object.
func (a *App) getJSON(ctx context.Context, m *dcs.Member, endpoint string) (map[string]any, error) {
	r, err := a.request(ctx, m, http.MethodGet, endpoint, nil, 0)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return nil, fmt.Errorf("GET /%s on %s: status %d, not a JSON object", endpoint, m.Name, r.Status)
	}
	return out, nil
}
