package ha

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/pgwarden/pgwarden/dcs"
)

// peerAnswer is the part of GET /patroni the leader race needs.
type peerAnswer struct {
	State    string `json:"state"`
	Role     string `json:"role"`
	Timeline int    `json:"timeline"`
	XLog     struct {
		Location         int64 `json:"location"`
		ReceivedLocation int64 `json:"received_location"`
		ReplayedLocation int64 `json:"replayed_location"`
	} `json:"xlog"`
}

// askPeers asks every other member for its status in parallel, each with
// the given timeout. Unreachable members come back with Reachable false.
func askPeers(ctx context.Context, client *http.Client, self string, members []dcs.Member, timeout time.Duration) []Peer {
	out := make([]Peer, 0, len(members))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		if m.Name == self || m.APIURL == "" {
			continue
		}
		wg.Add(1)
		go func(m dcs.Member) {
			defer wg.Done()
			p := askPeer(ctx, client, m, timeout)
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
		}(m)
	}
	wg.Wait()
	return out
}

func askPeer(ctx context.Context, client *http.Client, m dcs.Member, timeout time.Duration) Peer {
	p := Peer{Name: m.Name}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.APIURL, nil)
	if err != nil {
		return p
	}
	resp, err := client.Do(req)
	if err != nil {
		return p
	}
	defer resp.Body.Close()
	var a peerAnswer
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&a); err != nil {
		return p
	}
	p.Reachable = true
	p.Running = a.State == "running"
	p.Primary = a.Role == "primary" || a.Role == "master"
	p.Timeline = a.Timeline
	if p.Primary {
		p.WAL = a.XLog.Location
	} else {
		p.WAL = max(a.XLog.ReceivedLocation, a.XLog.ReplayedLocation)
	}
	return p
}
