package ctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgwarden/pgwarden/dcs"
	"github.com/pgwarden/pgwarden/internal/version"
)

// App holds the streams, the environment and the clients of one run of
// the tool. The zero timeouts are replaced by the defaults below; tests
// shorten them.
type App struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Lookup reads an environment variable (nil: none is set).
	Lookup func(string) (string, bool)
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	// EtcdTimeout bounds one etcd read or write.
	EtcdTimeout time.Duration
	// RESTTimeout bounds one REST call to a member.
	RESTTimeout time.Duration
	// SwitchoverTimeout bounds POST /switchover and /failover, which the
	// leader answers only when the switchover is done.
	SwitchoverTimeout time.Duration
	// RestartTimeout bounds POST /restart, answered when PostgreSQL is up.
	RestartTimeout time.Duration
	// PollInterval is the pause between two polls of reinit --wait and
	// pause --wait.
	PollInterval time.Duration

	flags    globalFlags
	settings *settings
	in       *bufio.Reader
	handles  map[string]*dcs.Etcd
	rest     *restClient
}

// Default timeouts.
const (
	DefaultEtcdTimeout       = 5 * time.Second
	DefaultRESTTimeout       = 5 * time.Second
	DefaultSwitchoverTimeout = 30 * time.Second
	DefaultRestartTimeout    = 60 * time.Second
	DefaultPollInterval      = 2 * time.Second
)

// usageError is a wrong command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// errFailed is returned by a command that already printed why it failed
// (patronictl's "Failed: ..." lines): exit code 1, nothing more printed.
var errFailed = errors.New("failed")

// errAborted is a prompt that got no answer (end of input), as click's
// Abort.
var errAborted = errors.New("Aborted!")

// Main runs pgwardenctl with args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &App{Stdin: stdin, Stdout: stdout, Stderr: stderr, Lookup: os.LookupEnv}
	return a.Run(ctx, args)
}

// Run executes one command line and returns the exit code.
func (a *App) Run(ctx context.Context, args []string) int {
	defer a.close()
	root := a.NewRootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ue *usageError
	switch {
	case errors.Is(err, errFailed):
		return 1
	case errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") ||
		strings.HasPrefix(err.Error(), "unknown flag") || strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		fmt.Fprintf(a.Stderr, "Error: %v\nRun 'pgwardenctl --help' for usage.\n", err)
		return 2
	case errors.Is(err, errAborted):
		fmt.Fprintln(a.Stderr, "Aborted!")
		return 1
	default:
		fmt.Fprintf(a.Stderr, "Error: %v\n", err)
		return 1
	}
}

func (a *App) close() {
	for _, h := range a.handles {
		_ = h.Close()
	}
	a.handles = nil
}

func (a *App) defaults() {
	if a.Stdin == nil {
		a.Stdin = strings.NewReader("")
	}
	if a.Stdout == nil {
		a.Stdout = io.Discard
	}
	if a.Stderr == nil {
		a.Stderr = io.Discard
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.EtcdTimeout <= 0 {
		a.EtcdTimeout = DefaultEtcdTimeout
	}
	if a.RESTTimeout <= 0 {
		a.RESTTimeout = DefaultRESTTimeout
	}
	if a.SwitchoverTimeout <= 0 {
		a.SwitchoverTimeout = DefaultSwitchoverTimeout
	}
	if a.RestartTimeout <= 0 {
		a.RestartTimeout = DefaultRestartTimeout
	}
	if a.PollInterval <= 0 {
		a.PollInterval = DefaultPollInterval
	}
	if a.in == nil {
		a.in = bufio.NewReader(a.Stdin)
	}
}

// NewRootCommand builds the pgwardenctl command tree.
func (a *App) NewRootCommand() *cobra.Command {
	a.defaults()
	root := &cobra.Command{
		Use:   "pgwardenctl",
		Short: "Command-line interface for interacting with pgwarden (patronictl's equivalent)",
		Long: "Command-line interface for interacting with pgwarden, the equivalent of patronictl.\n\n" +
			"Settings come from the daemon's YAML file (-c, $" + ConfigFileEnv + " or " + DefaultConfigFile + ")\n" +
			"or from --dcs-url and --namespace; the cluster name defaults to the file's scope.",
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.flags.configFileSet = cmd.Flags().Changed("config-file")
			return nil
		},
	}
	root.SetIn(a.Stdin)
	root.SetOut(a.Stdout)
	root.SetErr(a.Stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	pf := root.PersistentFlags()
	pf.StringVarP(&a.flags.configFile, "config-file", "c", "", "configuration file (default $"+ConfigFileEnv+" or "+DefaultConfigFile+")")
	pf.StringVarP(&a.flags.dcsURL, "dcs-url", "d", "", "etcd URL(s), e.g. http://127.0.0.1:2379 or etcd3://host:2379/namespace (default $"+DCSURLEnv+")")
	pf.StringVar(&a.flags.dcsURL, "dcs", "", "alias of --dcs-url")
	_ = pf.MarkHidden("dcs")
	pf.StringVar(&a.flags.namespace, "namespace", "", "etcd key prefix (default: the file's namespace or /service/)")
	pf.BoolVarP(&a.flags.insecure, "insecure", "k", false, "allow connections to REST APIs with certificates that do not verify")

	root.AddCommand(
		a.listCommand(),
		a.topologyCommand(),
		a.switchoverCommand(),
		a.failoverCommand(),
		a.restartCommand(),
		a.reinitCommand(),
		a.reloadCommand(),
		a.flushCommand(),
		a.pauseCommand(true),
		a.pauseCommand(false),
		a.showConfigCommand(),
		a.editConfigCommand(),
		a.historyCommand(),
		a.removeCommand(),
		a.dsnCommand(),
		a.versionCommand(),
	)
	return root
}

// load reads the settings once.
func (a *App) load() (*settings, error) {
	if a.settings != nil {
		return a.settings, nil
	}
	lookup := a.Lookup
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	s, err := loadSettings(a.flags, lookup)
	if err != nil {
		return nil, err
	}
	a.settings = s
	return s, nil
}

// clusterName is the name given on the command line, else the file's
// scope.
func (a *App) clusterName(args []string) (string, error) {
	if len(args) > 0 && args[0] != "" {
		return args[0], nil
	}
	s, err := a.load()
	if err != nil {
		return "", err
	}
	if s.Scope == "" {
		return "", usageErrorf("no cluster name: give it as an argument or set scope in the configuration file")
	}
	return s.Scope, nil
}

// handle returns the etcd handle of a cluster, or of one Citus group of
// it (group not nil), made once per scope and group.
func (a *App) handle(scope string, group *int) (*dcs.Etcd, error) {
	key := scope
	if group != nil {
		key += "\x00" + strconv.Itoa(*group)
	}
	if h, ok := a.handles[key]; ok {
		return h, nil
	}
	s, err := a.load()
	if err != nil {
		return nil, err
	}
	opts := dcs.Options{
		Endpoints:   s.Endpoints,
		Username:    s.EtcdUser,
		Password:    s.EtcdPass,
		CACert:      s.CACert,
		Cert:        s.Cert,
		Key:         s.Key,
		Namespace:   s.Namespace,
		Scope:       scope,
		DialTimeout: a.EtcdTimeout,
		Logger:      slog.New(slog.NewTextHandler(a.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if group != nil {
		opts.Citus, opts.Group = true, *group
	}
	h, err := dcs.New(opts)
	if err != nil {
		return nil, err
	}
	if a.handles == nil {
		a.handles = make(map[string]*dcs.Etcd)
	}
	a.handles[key] = h
	return h, nil
}

func (a *App) out(format string, args ...any) {
	fmt.Fprintf(a.Stdout, format+"\n", args...)
}

// timestamp is patronictl's timestamp(precision): the local time with
// precision digits of fractional seconds (0: none).
func (a *App) timestamp(precision int) string {
	s := a.Now().Format("2006-01-02 15:04:05.000000")
	return s[:len(s)+precision-7]
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// noArgsAfter checks positional arguments: at most max (max < 0: any).
func maxArgs(max int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if max >= 0 && len(args) > max {
			return usageErrorf("%s: got %d arguments, want at most %d", cmd.CommandPath(), len(args), max)
		}
		return nil
	}
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s: got %d arguments, want %d", cmd.CommandPath(), len(args), n)
		}
		return nil
	}
}

// versionString is the tool's version line.
func versionString() string { return "pgwardenctl version " + version.Version }
