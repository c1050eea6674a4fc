package dcs

import (
	"testing"
	"time"
)

func TestFailoverRoundTripsPatroniSample(t *testing.T) {
	const sample = `{"leader":"node0","member":"node2","scheduled_at":"2026-11-29T06:19:09+00:00"}`
	f, err := ParseFailover([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if f.Leader != "node0" || f.Candidate != "node2" || !f.ScheduledAt.Equal(time.Date(2026, 11, 29, 6, 19, 9, 0, time.UTC)) {
		t.Fatalf("parsed %+v", f)
	}
	out, _ := f.MarshalJSON()
	if string(out) != sample {
		t.Fatalf("wrote %s, want %s", out, sample)
	}
	empty, err := ParseFailover([]byte(`{}`))
	if err != nil || !empty.Empty() {
		t.Fatalf("{} parsed to %+v, %v", empty, err)
	}
	if _, err := ParseFailover([]byte(`{"leader": 3}`)); err == nil {
		t.Fatal("a number as leader was accepted")
	}
	c, _ := ParseFailover([]byte(`{"candidate":"n1"}`))
	if c.Candidate != "n1" {
		t.Fatalf("candidate alias not read: %+v", c)
	}
}

func TestParseTime(t *testing.T) {
	good := map[string]time.Time{
		"2026-11-29T06:19:09+00:00":        time.Date(2026, 11, 29, 6, 19, 9, 0, time.UTC),
		"2026-11-29 06:19:09.5Z":           time.Date(2026, 11, 29, 6, 19, 9, 5e8, time.UTC),
		"2026-11-29T07:19+01:00":           time.Date(2026, 11, 29, 6, 19, 0, 0, time.UTC),
		"2026-11-29T05:19:14.789854+00:00": time.Date(2026, 11, 29, 5, 19, 14, 789854000, time.UTC),
	}
	for in, want := range good {
		got, err := ParseTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"2026-11-29T06:19:09", "tomorrow", ""} {
		if _, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) accepted", in)
		}
	}
	if s := FormatPyTime(time.Date(2026, 11, 29, 5, 19, 14, 789854000, time.UTC)); s != "2026-11-29T05:19:14.789854+00:00" {
		t.Errorf("FormatPyTime = %s", s)
	}
}

func TestHistoryRoundTripsPatroniSample(t *testing.T) {
	const sample = `[[1,67109296,"no recovery target specified","2026-11-29T05:19:14.789854+00:00","node2"]]`
	h, err := ParseHistory([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].Timeline != 1 || h[0].LSN != 67109296 || h[0].NewLeader != "node2" {
		t.Fatalf("parsed %+v", h)
	}
	out, _ := HistoryJSON(h)
	if string(out) != sample {
		t.Fatalf("wrote %s", out)
	}
	old, err := ParseHistory([]byte(`[[1,100,"no recovery target specified"]]`))
	if err != nil || old[0].Reason != "no recovery target specified" {
		t.Fatalf("three-field entry: %+v %v", old, err)
	}
	if _, err := ParseHistory([]byte(`[["x",1]]`)); err == nil {
		t.Fatal("a string timeline was accepted")
	}
}

func TestSyncKeyMatchesPatroniSamples(t *testing.T) {
	for _, sample := range []string{`{"leader":"node2","sync_standby":"node1"}`, `{"leader":"node1","quorum":0,"sync_standby":"node2"}`} {
		s, err := ParseSync([]byte(sample))
		if err != nil || s.Leader == "" || len(s.Standbys) != 1 {
			t.Fatalf("%s parsed to %+v, %v", sample, s, err)
		}
	}
	s := SyncState{Leader: "node1", Standbys: []string{"node3", "node2"}}
	out, _ := s.MarshalJSON()
	if string(out) != `{"leader":"node1","quorum":0,"sync_standby":"node2,node3"}` {
		t.Fatalf("wrote %s", out)
	}
	empty, _ := SyncState{Leader: "node1"}.MarshalJSON()
	if string(empty) != `{"leader":"node1","quorum":0,"sync_standby":null}` {
		t.Fatalf("wrote %s", empty)
	}
	back, err := ParseSync(empty)
	if err != nil || len(back.Standbys) != 0 || (&back).Names("node1") {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}
