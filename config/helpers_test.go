package config

import (
	"errors"
	"sort"
	"strings"
	"testing"
)

// baseSections is a minimal valid file, one top-level key per entry.
var baseSections = []struct{ key, text string }{
	{"scope", "scope: demo\n"},
	{"name", "name: node1\n"},
	{"restapi", "restapi:\n  listen: 127.0.0.1:8008\n"},
	{"etcd3", "etcd3:\n  host: 127.0.0.1:2379\n"},
	{"postgresql", "postgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /data\n"},
}

// doc builds a file from the minimal one: sections[key] replaces the base
// section of that key ("" drops it); other keys are appended, sorted.
func doc(sections map[string]string) string {
	var b strings.Builder
	done := map[string]bool{}
	for _, s := range baseSections {
		done[s.key] = true
		if text, ok := sections[s.key]; ok {
			b.WriteString(text)
			continue
		}
		b.WriteString(s.text)
	}
	var extra []string
	for k := range sections {
		if !done[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		b.WriteString(sections[k])
	}
	return b.String()
}

// noEnv is an environment with nothing set.
func noEnv(string) (string, bool) { return "", false }

// envOf returns a lookup function over m.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := ParseWithEnv([]byte(text), "test.yml", noEnv)
	if err != nil {
		t.Fatalf("unexpected error: %v\n--- file:\n%s", err, text)
	}
	return c
}

func mustFail(t *testing.T, text string, lookup func(string) (string, bool), wants ...string) error {
	t.Helper()
	if lookup == nil {
		lookup = noEnv
	}
	_, err := ParseWithEnv([]byte(text), "test.yml", lookup)
	if err == nil {
		t.Fatalf("expected an error containing %q, got none\n--- file:\n%s", wants, text)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("error %v is not a *FieldError", err)
	}
	return err
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
