package ha

import "testing"

func BenchmarkDecide(b *testing.B) {
	n1 := member("node1", 5441, 1, "replica")
	n3 := member("node3", 5443, 1, "replica")
	o := obs(cluster("", 0, n1, n3), standbyPG(200, false))
	o.Peers = []Peer{{Name: "node3", Reachable: true, Running: true, Timeline: 1, WAL: 150}}
	b.ReportAllocs()
	for b.Loop() {
		if p := Decide(o); len(p.Actions) != 1 {
			b.Fatal(p)
		}
	}
}
