package restapi

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// BenchmarkPrimaryHealthTCP measures /primary over real loopback TCP
// with keep-alive clients, as HAProxy's checks arrive, and reports
// requests per second.
func BenchmarkPrimaryHealthTCP(b *testing.B) {
	s := newTestServer(b, primaryNode(), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln)
	defer s.Shutdown(b.Context())
	url := "http://" + ln.Addr().String() + "/primary"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(8)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("GET /primary = %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
