package restapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The operation endpoints answer like Patroni's: a plain-text message
// (no trailing newline, which patronictl would print as an empty line)
// or, for the config and history documents, JSON in json.dumps' layout.

// maxBodyBytes bounds the JSON body of an operation request.
const maxBodyBytes = 1 << 20

// Polling of a switchover's outcome: Patroni checks once a second for
// 2*max(10s, loop_wait); we check far more often, for as long.
const (
	defaultPollInterval = 50 * time.Millisecond
	minPollWindow       = 10 * time.Second
	maxPollWindow       = writeTimeout - defaultSyncWait - 5*time.Second
	defaultSyncWait     = 10 * time.Second
)

// opsRoutes registers the operation endpoints. Read-only ones go through
// safe (no authentication, like Patroni's GETs); the others through
// HandleUnsafe so that basic authentication applies.
func (s *Server) opsRoutes() {
	s.safe("/config", s.withOps(s.handleGetConfig))
	s.safe("/history", s.withOps(s.handleGetHistory))

	s.HandleUnsafe(http.MethodPost, "/switchover", s.withOps(func(w http.ResponseWriter, r *http.Request) {
		s.handleFailover(w, r, actionSwitchover)
	}))
	s.HandleUnsafe(http.MethodPost, "/failover", s.withOps(func(w http.ResponseWriter, r *http.Request) {
		s.handleFailover(w, r, actionFailover)
	}))
	s.HandleUnsafe(http.MethodDelete, "/switchover", s.withOps(s.handleDeleteSwitchover))
	s.HandleUnsafe(http.MethodPost, "/restart", s.withOps(s.handleRestart))
	s.HandleUnsafe(http.MethodDelete, "/restart", s.withOps(s.handleDeleteRestart))
	s.HandleUnsafe(http.MethodPost, "/reinitialize", s.withOps(s.handleReinitialize))
	s.HandleUnsafe(http.MethodPost, "/reload", s.withOps(s.handleReload))
	s.HandleUnsafe(http.MethodPatch, "/config", s.withOps(s.handlePatchConfig))
	s.HandleUnsafe(http.MethodPut, "/config", s.withOps(s.handlePutConfig))
}

// withOps answers 503 when the server was built without Options.Ops.
func (s *Server) withOps(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.ops == nil {
			if r.Method == http.MethodHead || r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			writeMessage(w, http.StatusServiceUnavailable, "operations are not available")
			return
		}
		h(w, r)
	}
}

// writeMessage answers code with the plain-text message msg, as Patroni's
// write_response does (but labelled text/plain rather than text/html).
func writeMessage(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h["Content-Type"] = contentPlain
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

// writePyJSON answers code with v in json.dumps' layout.
func writePyJSON(w http.ResponseWriter, code int, v any) {
	writeJSON(w, code, func(b []byte) []byte { return appendPyJSON(b, v) })
}

// bodyError is why a request body was refused, with its status code.
type bodyError struct {
	code int
	msg  string
}

// readJSONObject reads the request body as a JSON object, numbers kept as
// json.Number. An empty body (or, when optional, an empty object) is
// allowed only when optional, and then yields an empty map. Like Patroni's
// _read_json_content, anything that is not a JSON object is refused.
func readJSONObject(w http.ResponseWriter, r *http.Request, optional bool) (map[string]any, *bodyError) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", maxBodyBytes)}
		}
		return nil, &bodyError{http.StatusBadRequest, "could not read the request body: " + err.Error()}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return map[string]any{}, nil
		}
		return nil, &bodyError{http.StatusBadRequest, "the request body must be a JSON object, got nothing"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &bodyError{http.StatusBadRequest, "the request body is not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &bodyError{http.StatusBadRequest, "the request body is not valid JSON: unexpected data after the top-level value"}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &bodyError{http.StatusBadRequest, "the request body must be a JSON object, got " + jsonKind(v)}
	}
	if len(m) == 0 && !optional {
		return nil, &bodyError{http.StatusBadRequest, "the request body must be a non-empty JSON object"}
	}
	return m, nil
}

// jsonKind names the JSON type of a decoded value, for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// parseBool reads a flag as Patroni's parse_bool: true, "on", "yes", "1"
// ... are true; "off", "false", "no", "0" false; ok false for anything
// else.
func parseBool(v any) (val, ok bool) {
	var s string
	switch v := v.(type) {
	case bool:
		return v, true
	case nil:
		return false, false
	case string:
		s = v
	case json.Number:
		s = v.String()
	case float64:
		s = fmt.Sprint(v)
	case int:
		s = fmt.Sprint(v)
	default:
		return false, false
	}
	switch strings.ToLower(s) {
	case "on", "true", "yes", "1":
		return true, true
	case "off", "false", "no", "0":
		return false, true
	}
	return false, false
}

// truthy is parseBool's value, false when unparsable (Patroni's
// bool(parse_bool(x))).
func truthy(v any) bool {
	b, _ := parseBool(v)
	return b
}
