package restapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/pgwarden/pgwarden/citus"
)

// CitusEvents is the Citus coordinator a worker's POST /citus reaches.
type CitusEvents interface {
	HandleEvent(ctx context.Context, ev citus.Event) error
}

// citusRoutes registers POST /citus (and Patroni 4's /mpp): a worker group
// leader tells the coordinator group's leader that its primary changes.
func (s *Server) citusRoutes() {
	s.HandleUnsafe(http.MethodPost, "/citus", s.handleCitus)
	s.HandleUnsafe(http.MethodPost, "/mpp", s.handleCitus)
}

func (s *Server) handleCitus(w http.ResponseWriter, r *http.Request) {
	if s.citus == nil {
		writeMessage(w, http.StatusServiceUnavailable, "this member is not a Citus coordinator")
		return
	}
	m, berr := readJSONObject(w, r, false)
	if berr != nil {
		writeMessage(w, berr.code, berr.msg)
		return
	}
	raw, _ := json.Marshal(m)
	var ev citus.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		writeMessage(w, http.StatusBadRequest, "the event is not valid: "+err.Error())
		return
	}
	if err := ev.Check(); err != nil {
		writeMessage(w, http.StatusBadRequest, "the event is not valid: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 40*time.Second)
	defer cancel()
	if err := s.citus.HandleEvent(ctx, ev); err != nil {
		code := http.StatusConflict
		if errors.Is(err, citus.ErrNotLeading) {
			code = http.StatusServiceUnavailable
		}
		writeMessage(w, code, err.Error())
		return
	}
	writeMessage(w, http.StatusOK, "OK")
}
