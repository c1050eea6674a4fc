package restapi

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"github.com/pgwarden/pgwarden/config"
	"github.com/pgwarden/pgwarden/dcs"
)

// readCluster returns a fresh snapshot or, when DCS cannot be read, the
// one the HA loop last published (Patroni's GET /config and /history use
// its cached cluster). nil and the error when there is neither.
func (s *Server) readCluster(r *http.Request) (*dcs.Cluster, error) {
	c, err := s.ops.Cluster(r.Context())
	if err == nil && c != nil {
		return c, nil
	}
	if n := s.board.Load(); n != nil && n.Cluster != nil {
		return n.Cluster, nil
	}
	if err == nil {
		err = errNoSnapshot
	}
	return nil, err
}

type constError string

func (e constError) Error() string { return string(e) }

const errNoSnapshot = constError("no cluster snapshot")

// writeRead answers a read-only request: the body only for GET.
func writeRead(w http.ResponseWriter, r *http.Request, code int, body func(http.ResponseWriter)) {
	if r.Method != http.MethodGet {
		w.WriteHeader(code)
		return
	}
	body(w)
}

// handleGetConfig answers GET /config: the config key, 502 when there is
// none (as Patroni).
func (s *Server) handleGetConfig(w http.ResponseWriter, r *http.Request) {
	c, err := s.readCluster(r)
	if err != nil {
		writeRead(w, r, http.StatusServiceUnavailable, func(w http.ResponseWriter) {
			writeMessage(w, http.StatusServiceUnavailable, "failed to read the cluster state from DCS: "+err.Error())
		})
		return
	}
	if c.Config == nil {
		writeRead(w, r, http.StatusBadGateway, func(w http.ResponseWriter) {
			writeMessage(w, http.StatusBadGateway, "the cluster has no configuration in DCS")
		})
		return
	}
	writeRead(w, r, http.StatusOK, func(w http.ResponseWriter) { writePyJSON(w, http.StatusOK, c.Config) })
}

// handleGetHistory answers GET /history: the history key as Patroni
// shows it, [] when there is none.
func (s *Server) handleGetHistory(w http.ResponseWriter, r *http.Request) {
	c, err := s.readCluster(r)
	if err != nil {
		writeRead(w, r, http.StatusServiceUnavailable, func(w http.ResponseWriter) {
			writeMessage(w, http.StatusServiceUnavailable, "failed to read the cluster state from DCS: "+err.Error())
		})
		return
	}
	writeRead(w, r, http.StatusOK, func(w http.ResponseWriter) {
		writeJSON(w, http.StatusOK, func(b []byte) []byte { return appendPyHistory(b, c.HistoryEntries) })
	})
}

// handlePatchConfig answers PATCH /config: the body is merged into the
// config key as Patroni's patch_config does (objects recursively, null
// deletes a key), the result validated and written if the key has not
// changed since it was read.
func (s *Server) handlePatchConfig(w http.ResponseWriter, r *http.Request) {
	req, berr := readJSONObject(w, r, false)
	if berr != nil {
		writeMessage(w, berr.code, berr.msg)
		return
	}
	req = plainNumbers(req).(map[string]any)
	ctx := r.Context()
	c, err := s.ops.Cluster(ctx)
	if err != nil {
		writeMessage(w, http.StatusServiceUnavailable, "failed to read the cluster state from DCS: "+err.Error())
		return
	}
	if c.ConfigRevision == 0 && c.Config == nil {
		writeMessage(w, http.StatusServiceUnavailable, "the cluster has no configuration in DCS")
		return
	}
	data, _ := deepCopy(c.Config).(map[string]any)
	if data == nil {
		data = map[string]any{} // a garbled key is replaced
	}
	if patchConfig(data, req) {
		if _, err := config.DynamicFromMap(data); err != nil {
			writeMessage(w, http.StatusBadRequest, "invalid configuration: "+err.Error())
			return
		}
		if !s.writeConfig(w, r, data, c.ConfigRevision) {
			return
		}
	}
	s.ops.Wake()
	writePyJSON(w, http.StatusOK, data)
}

// handlePutConfig answers PUT /config: the body replaces the config key.
func (s *Server) handlePutConfig(w http.ResponseWriter, r *http.Request) {
	req, berr := readJSONObject(w, r, false)
	if berr != nil {
		writeMessage(w, berr.code, berr.msg)
		return
	}
	req = plainNumbers(req).(map[string]any)
	if _, err := config.DynamicFromMap(req); err != nil {
		writeMessage(w, http.StatusBadRequest, "invalid configuration: "+err.Error())
		return
	}
	c, err := s.ops.Cluster(r.Context())
	if err != nil {
		writeMessage(w, http.StatusServiceUnavailable, "failed to read the cluster state from DCS: "+err.Error())
		return
	}
	if c.Config == nil || !deepCompare(req, c.Config) {
		if !s.writeConfig(w, r, req, c.ConfigRevision) {
			return
		}
		s.ops.Wake()
	}
	writePyJSON(w, http.StatusOK, req)
}

// writeConfig writes cfg with compare-and-swap on rev; on failure it
// answers (409 for a lost race, 503 when DCS failed) and returns false.
func (s *Server) writeConfig(w http.ResponseWriter, r *http.Request, cfg map[string]any, rev int64) bool {
	ok, err := s.ops.SetConfig(r.Context(), cfg, rev)
	switch {
	case err != nil:
		s.log.Warn("writing the config key", "err", err)
		writeMessage(w, http.StatusServiceUnavailable, "failed to write config key into DCS")
		return false
	case !ok:
		writeMessage(w, http.StatusConflict, "the config key changed meanwhile; read it again and retry")
		return false
	}
	return true
}

// patchConfig merges data into cfg as Patroni's patch_config: a null
// value removes the key, an object is merged into an object, any other
// value replaces the old one unless both read the same as strings. It
// reports whether cfg changed.
func patchConfig(cfg, data map[string]any) bool {
	changed := false
	for name, value := range data {
		old, exists := cfg[name]
		switch {
		case value == nil:
			if exists {
				delete(cfg, name)
				if old != nil {
					changed = true
				}
			}
		case !exists:
			cfg[name] = value
			changed = true
		default:
			if vm, ok := value.(map[string]any); ok {
				if om, ok := old.(map[string]any); ok {
					if patchConfig(om, vm) {
						changed = true
					}
				} else {
					cfg[name] = value
					changed = true
				}
			} else if pyStr(old) != pyStr(value) {
				cfg[name] = value
				changed = true
			}
		}
	}
	return changed
}

// deepCompare is Patroni's deep_compare: the same keys, objects compared
// recursively, other values by their string form.
func deepCompare(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok {
			return false
		}
		if am, ok := av.(map[string]any); ok {
			bm, ok := bv.(map[string]any)
			if !ok || !deepCompare(am, bm) {
				return false
			}
		} else if pyStr(av) != pyStr(bv) {
			return false
		}
	}
	return true
}

// pyStr approximates Python's str() of a decoded JSON value, so that 10,
// 10.0 from Go's decoder and "10" compare equal as Patroni compares them.
func pyStr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		return v
	}
	return string(appendPyJSON(nil, v)) // numbers, and a stand-in for lists

}

// plainNumbers turns the json.Number values of a decoded request into
// int64 (whole numbers that fit) or float64, the types the rest of the
// program expects from JSON.
func plainNumbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = plainNumbers(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = plainNumbers(x)
		}
		return v
	case json.Number:
		if i, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			return i
		}
		if f, err := v.Float64(); err == nil && !math.IsInf(f, 0) {
			return f
		}
		return v
	}
	return v
}

// deepCopy copies maps and slices of a decoded JSON value.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return map[string]any(nil)
		}
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = deepCopy(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}
