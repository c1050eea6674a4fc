package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/dcs"
)

func (a *App) showConfigCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show-config [CLUSTER_NAME]",
		Short: "Show the cluster's dynamic configuration (the config key)",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := a.clusterName(args)
			if err != nil {
				return err
			}
			group, err := a.groupOption(cmd, true)
			if err != nil {
				return err
			}
			v, err := a.read(cmd.Context(), name, group)
			if err != nil {
				return err
			}
			if v.c.Config != nil {
				a.out("%s", dumpYAML(v.c.Config))
			}
			return nil
		},
	}
	addGroupFlag(cmd, true)
	return cmd
}

// sameConfig compares two configurations as values (10 and 10.0 alike).
func sameConfig(x, y any) bool {
	jx, err1 := json.Marshal(normalize(x))
	jy, err2 := json.Marshal(normalize(y))
	return err1 == nil && err2 == nil && string(jx) == string(jy)
}

// patchConfig merges patch into cfg as Patroni's patch_config: null
// removes a key, mappings merge recursively, other values replace (unless
// they print the same).
func patchConfig(cfg, patch map[string]any) {
	for k, v := range patch {
		old, exists := cfg[k]
		switch {
		case v == nil:
			delete(cfg, k)
		case !exists:
			cfg[k] = v
		default:
			if pm, ok := v.(map[string]any); ok {
				if om, ok := old.(map[string]any); ok {
					patchConfig(om, pm)
				} else {
					cfg[k] = v
				}
			} else if pyStr(old) != pyStr(v) {
				cfg[k] = v
			}
		}
	}
}

// setPath sets (or, with nil, removes) the value at a dotted path. Below
// postgresql.parameters the rest of the path is one name, as GUCs may
// contain dots.
func setPath(cfg map[string]any, path []string, value any, prefix []string) {
	if len(prefix) == 2 && prefix[0] == "postgresql" && prefix[1] == "parameters" {
		path = []string{strings.Join(path, ".")}
	}
	key := path[0]
	if len(path) == 1 {
		if value == nil {
			delete(cfg, key)
		} else {
			cfg[key] = value
		}
		return
	}
	sub, ok := cfg[key].(map[string]any)
	if !ok {
		sub = map[string]any{}
		cfg[key] = sub
	}
	setPath(sub, path[1:], value, append(prefix, key))
	if len(sub) == 0 {
		delete(cfg, key)
	}
}

// applyConfigChanges applies KEY=VALUE pairs, the values read as YAML.
func applyConfigChanges(cfg map[string]any, pairs []string) error {
	for _, p := range pairs {
		key, value, ok := strings.Cut(p, "=")
		if !ok || p == "" {
			return fmt.Errorf("Invalid parameter setting %s", p)
		}
		v, err := loadYAML(value)
		if err != nil {
			return fmt.Errorf("Invalid value in parameter setting %s: %v", p, err)
		}
		setPath(cfg, strings.Split(strings.TrimSpace(key), "."), v, nil)
	}
	return nil
}

// readYAMLFile reads --apply / --replace (- is stdin) as a mapping.
func (a *App) readYAMLFile(name string) (map[string]any, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(a.in)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, err
	}
	v, err := loadYAML(string(data))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %v", name, err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s does not hold a YAML mapping", name)
	}
	return m, nil
}

// unifiedDiff is Python's difflib.unified_diff of the two texts' lines,
// as patronictl prints it.
func unifiedDiff(before, after string) string {
	lines := func(s string) []string {
		parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
		for i := range parts {
			parts[i] += "\n"
		}
		return parts
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: lines(before), B: lines(after), Context: 3})
	if err != nil || d == "" {
		return ""
	}
	return "--- \n+++ \n" + d
}

// invokeEditor lets the user edit text in $EDITOR (else editor or vi).
func (a *App) invokeEditor(text, clusterName string) (string, error) {
	editor := ""
	if a.Lookup != nil {
		editor, _ = a.Lookup("EDITOR")
	}
	var argv []string
	if editor = strings.TrimSpace(editor); editor != "" {
		argv = strings.Fields(editor)
	} else {
		for _, e := range []string{"editor", "vi"} {
			if p, err := exec.LookPath(e); err == nil {
				argv = []string{p}
				break
			}
		}
	}
	if len(argv) == 0 {
		return "", errors.New("EDITOR environment variable is not set. editor or vi are not available")
	}
	f, err := os.CreateTemp("", strings.ReplaceAll(clusterName, "/", "_")+"-config-*.yaml")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	cmd := exec.Command(argv[0], append(argv[1:], f.Name())...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if in, ok := a.Stdin.(*os.File); ok {
		cmd.Stdin = in
	}
	if out, ok := a.Stdout.(*os.File); ok {
		cmd.Stdout = out
	}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("Editor exited with return code %d", ee.ExitCode())
		}
		return "", err
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func (a *App) editConfigCommand() *cobra.Command {
	var (
		force, quiet          bool
		sets, pgs             []string
		applyFile, replaceFil string
	)
	cmd := &cobra.Command{
		Use:   "edit-config [CLUSTER_NAME]",
		Short: "Edit the cluster's dynamic configuration (the config key)",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name, err := a.clusterName(args)
			if err != nil {
				return err
			}
			group, err := a.groupOption(cmd, true)
			if err != nil {
				return err
			}
			v, err := a.read(ctx, name, group)
			if err != nil {
				return err
			}
			h, c := v.h, v.c
			if c.Config == nil {
				return fmt.Errorf("The config key does not exist in the cluster %s", name)
			}
			current := normalize(c.Config).(map[string]any)
			before := dumpYAML(current)
			changed := normalize(c.Config).(map[string]any)
			edited := false
			after := ""
			if replaceFil != "" {
				m, err := a.readYAMLFile(replaceFil)
				if err != nil {
					return err
				}
				changed = map[string]any{}
				patchConfig(changed, m)
				edited = true
			}
			if applyFile != "" {
				m, err := a.readYAMLFile(applyFile)
				if err != nil {
					return err
				}
				patchConfig(changed, m)
				edited = true
			}
			if len(sets) > 0 || len(pgs) > 0 {
				pairs := append([]string(nil), sets...)
				for _, p := range pgs {
					pairs = append(pairs, "postgresql.parameters."+strings.TrimLeft(p, " \t"))
				}
				if err := applyConfigChanges(changed, pairs); err != nil {
					return err
				}
				edited = true
			}
			if edited {
				after = dumpYAML(changed)
			} else {
				if after, err = a.invokeEditor(before, name); err != nil {
					return err
				}
				v, err := loadYAML(after)
				if err != nil {
					return fmt.Errorf("the edited configuration is not valid YAML: %v", err)
				}
				m, ok := v.(map[string]any)
				if !ok && v != nil {
					return fmt.Errorf("the edited configuration is not a YAML mapping")
				}
				if m == nil {
					m = map[string]any{}
				}
				changed = m
			}
			if sameConfig(current, changed) {
				if !quiet {
					a.out("Not changed")
				}
				return nil
			}
			if !quiet {
				fmt.Fprint(a.Stdout, unifiedDiff(before, after))
			}
			if (applyFile == "-" || replaceFil == "-") && !force {
				a.out("Use --force option to apply changes")
				return nil
			}
			if !force {
				ok, err := a.confirm("Apply these changes?")
				if err != nil {
					return err
				}
				if !ok {
					return nil
				}
			}
			return a.writeConfig(ctx, h, changed, c.ConfigRevision)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quiet", "q", false, "do not show changes")
	f.StringArrayVarP(&sets, "set", "s", nil, "set a configuration value (key.path=value); can be given several times")
	f.StringArrayVarP(&pgs, "pg", "p", nil, "set a PostgreSQL parameter (name=value), shorthand for -s postgresql.parameters.name=value")
	f.StringVar(&applyFile, "apply", "", "apply configuration from a YAML file (- for stdin)")
	f.StringVar(&replaceFil, "replace", "", "replace the configuration with a YAML file (- for stdin)")
	f.BoolVar(&force, "force", false, "do not ask for confirmation at any point")
	addGroupFlag(cmd, true)
	return cmd
}

func (a *App) writeConfig(ctx context.Context, h *dcs.Etcd, cfg map[string]any, rev int64) error {
	ctx, cancel := context.WithTimeout(ctx, a.EtcdTimeout)
	defer cancel()
	ok, err := h.SetConfig(ctx, cfg, rev)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("Config modification aborted due to concurrent changes")
	}
	a.out("Configuration changed")
	return nil
}

func (a *App) historyCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "history [CLUSTER_NAME]",
		Short: "Show the history of failovers and switchovers",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			name, err := a.clusterName(args)
			if err != nil {
				return err
			}
			group, err := a.groupOption(cmd, true)
			if err != nil {
				return err
			}
			v, err := a.read(cmd.Context(), name, group)
			if err != nil {
				return err
			}
			c := v.c
			rows := make([][]any, 0, len(c.HistoryEntries))
			for _, e := range c.HistoryEntries {
				rows = append(rows, []any{int64(e.Timeline), e.LSN, e.Reason, e.Time, e.NewLeader})
			}
			printOutput(a.Stdout, []string{"TL", "LSN", "Reason", "Timestamp", "New Leader"}, rows,
				map[string]byte{"TL": 'r', "LSN": 'r'}, format, "")
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", fmtPretty, "output format: pretty, tsv, json, yaml")
	addGroupFlag(cmd, true)
	return cmd
}

func (a *App) removeCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "remove CLUSTER_NAME",
		Short: "Remove a cluster's keys from etcd",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			name := args[0]
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			v, err := a.read(cmd.Context(), name, group)
			if err != nil {
				return err
			}
			if v.allGroups() {
				return errCitusGroupRequired
			}
			h, c := v.h, v.c
			a.outputMembers(a.Stdout, v, false, format)
			answer, err := a.prompt("Please confirm the cluster name to remove", nil)
			if err != nil {
				return err
			}
			if answer != name {
				return errors.New("Cluster names specified do not match")
			}
			const message = "Yes I am aware"
			answer, err = a.prompt(fmt.Sprintf("You are about to remove all information in DCS for %s, please type: %q", name, message), nil)
			if err != nil {
				return err
			}
			if answer != message {
				return fmt.Errorf("You did not exactly type %q", message)
			}
			if l := leaderName(c); l != "" {
				answer, err = a.prompt("This cluster currently is healthy. Please specify the leader name to continue", nil)
				if err != nil {
					return err
				}
				if answer != l {
					return errors.New("You did not specify the current leader of the cluster")
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), a.EtcdTimeout)
			defer cancel()
			_, err = h.DeleteCluster(ctx)
			return err
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", fmtPretty, "output format: pretty, tsv, json, yaml")
	addGroupFlag(cmd, false)
	return cmd
}

func (a *App) dsnCommand() *cobra.Command {
	var role, member string
	cmd := &cobra.Command{
		Use:   "dsn [CLUSTER_NAME]",
		Short: "Print a DSN (host=... port=...) of the leader or of the given member or role",
		Args:  maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role != "" {
				r, err := checkRole(role)
				if err != nil {
					return err
				}
				role = r
			}
			name, err := a.clusterName(args)
			if err != nil {
				return err
			}
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			v, err := a.read(cmd.Context(), name, group)
			if err != nil {
				return err
			}
			if member != "" {
				if role != "" {
					return errors.New("--role and --member are mutually exclusive options")
				}
				role = "any"
			} else if role == "" {
				role = "leader"
			}
			for _, m := range viewMembers(v, role) {
				if member != "" && m.Name != member {
					continue
				}
				host, port, ok := connHostPort(m.ConnURL)
				if !ok {
					return fmt.Errorf("Member %s has no conn_url", m.Name)
				}
				a.out("host=%s port=%d", host, port)
				return nil
			}
			return errors.New("Can not find a suitable member")
		},
	}
	cmd.Flags().StringVarP(&role, "role", "r", "", "give a DSN of any member with this role: "+strings.Join(roleChoices, ", "))
	cmd.Flags().StringVarP(&member, "member", "m", "", "give a DSN of this member")
	addGroupFlag(cmd, false)
	return cmd
}

// formatPGVersion is 150004 as "15.4", 90624 as "9.6.24".
func formatPGVersion(v int64) string {
	if v < 100000 {
		return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
	}
	return fmt.Sprintf("%d.%d", v/10000, v%100)
}

func (a *App) versionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version [CLUSTER_NAME [MEMBER_NAMES...]]",
		Short: "Print the version of pgwardenctl, and of the members of a cluster",
		RunE: func(cmd *cobra.Command, args []string) error {
			a.out("%s", versionString())
			if len(args) == 0 {
				return nil
			}
			a.out("")
			ctx := cmd.Context()
			group, err := a.groupOption(cmd, false)
			if err != nil {
				return err
			}
			v, err := a.read(ctx, args[0], group)
			if err != nil {
				return err
			}
			names := args[1:]
			for _, m := range viewMembers(v, "any") {
				if m.APIURL == "" || len(names) > 0 && !containsString(names, m.Name) {
					continue
				}
				r, err := a.request(ctx, m, http.MethodGet, "patroni", nil, 0)
				if err != nil {
					a.out("%s: failed to get version: %v", m.Name, err)
					continue
				}
				var data struct {
					ServerVersion int64 `json:"server_version"`
					Patroni       struct {
						Version string `json:"version"`
					} `json:"patroni"`
				}
				if err := json.Unmarshal(r.Body, &data); err != nil {
					a.out("%s: failed to get version: status %d, %v", m.Name, r.Status, err)
					continue
				}
				pg := ""
				if data.ServerVersion > 0 {
					pg = " PostgreSQL " + formatPGVersion(data.ServerVersion)
				}
				a.out("%s: pgwarden %s%s", m.Name, data.Patroni.Version, pg)
			}
			return nil
		},
	}
	addGroupFlag(cmd, false)
	return cmd
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
