package config

import (
	"errors"
	"strconv"
	"strings"
)

// FieldError is one problem with one setting. Parse, ParseWithEnv and Load
// return a *FieldError, or several joined with errors.Join; errors.As finds
// the first.
type FieldError struct {
	File string // the configuration file, "" when parsed from bytes or when Env is set
	Line int    // 1-based line of the key in File, 0 when unknown
	Env  string // the environment variable that set the value, if any
	Path string // dotted path of the key, e.g. "bootstrap.dcs.ttl" or "bootstrap.initdb[1]"
	Msg  string
}

// Error formats the error as "file:line: path: message", or
// "VARIABLE: path: message" when the value came from the environment.
func (e *FieldError) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString(e.Env)
		b.WriteString(": ")
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	case e.File != "":
		b.WriteString(e.File)
		b.WriteString(": ")
	case e.Line > 0:
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// joinErrors returns nil, the only error, or all of them joined.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// joinPath appends a key to a dotted path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath appends a list index to a path: "bootstrap.initdb[2]".
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// parentPath strips the last key or index from a path; "" at the top.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
