package config

import "testing"

func TestCitusSection(t *testing.T) {
	c := mustParse(t, doc(map[string]string{"citus": "citus:\n  group: 2\n  database: citus\n  register_secondaries: false\n"}))
	if c.Citus == nil || c.Citus.Group != 2 || c.Citus.Database != "citus" || c.Citus.RegisterSecondaries || c.Citus.IsCoordinator() {
		t.Fatalf("Citus = %+v", c.Citus)
	}
	if !c.Bootstrap.DCS.SynchronousMode || c.Bootstrap.DCS.Raw["synchronous_mode"] != true {
		t.Errorf("a Citus node's bootstrap.dcs.synchronous_mode defaults to %v (raw %v), want true", c.Bootstrap.DCS.SynchronousMode, c.Bootstrap.DCS.Raw)
	}
	if c := mustParse(t, doc(map[string]string{"citus": "citus:\n  group: 2\n  database: citus\n",
		"bootstrap": "bootstrap:\n  dcs:\n    synchronous_mode: false\n"})); c.Bootstrap.DCS.SynchronousMode {
		t.Errorf("an explicit synchronous_mode: false was overridden")
	}
	if c := mustParse(t, doc(nil)); c.Citus != nil || c.Bootstrap.DCS.SynchronousMode {
		t.Fatalf("no citus section read as %+v (synchronous_mode %v)", c.Citus, c.Bootstrap.DCS.SynchronousMode)
	}
	// The environment can make a node a Citus node, as PATRONI_CITUS_* do.
	c, err := ParseWithEnv([]byte(doc(nil)), "test.yml", envOf(map[string]string{"PGWARDEN_CITUS_GROUP": "0", "PGWARDEN_CITUS_DATABASE": "db1"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Citus == nil || c.Citus.Group != 0 || c.Citus.Database != "db1" || !c.Citus.RegisterSecondaries {
		t.Fatalf("Citus from the environment = %+v", c.Citus)
	}
}

func TestCitusSectionErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"no group", "citus:\n  database: citus\n", "citus.group: required in a Citus cluster"},
		{"no database", "citus:\n  group: 1\n", "citus.database: required in a Citus cluster"},
		{"negative group", "citus:\n  group: -1\n  database: citus\n", "citus.group: expected a group number"},
		{"group not a number", "citus:\n  group: one\n  database: citus\n", "citus.group: expected a group number"},
		{"typo", "citus:\n  group: 1\n  database: citus\n  grup: 2\n", "citus.grup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, doc(map[string]string{"citus": tc.text}), nil, tc.want)
		})
	}
}
