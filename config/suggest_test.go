package config

import "testing"

func TestEditDistance(t *testing.T) {
	cases := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 0}, {"", "abc", 3}, {"paramters", "parameters", 1},
		{"hots", "host", 1}, {"kitten", "sitting", 3}, {"ttl", "tll", 1},
	}
	for _, tc := range cases {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"listen", "connect_address", "data_dir", "parameters", "pg_hba", "ttl", "loop_wait"}
	cases := []struct {
		key, want string
	}{
		{"paramters", "parameters"},
		{"Data-Dir", "data_dir"},
		{"lisen", "listen"},
		{"tl", "ttl"},
		{"connect_adress", "connect_address"},
		{"loopwait", "loop_wait"},
		{"xyz", ""},
		{"completely_different", ""},
	}
	for _, tc := range cases {
		if got := suggest(tc.key, keys); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}
