// Package cli implements acdtcm's commands. Each command is a thin cobra wrapper that fills
// an options struct and calls a run function, so every command is testable without a
// terminal: tests call Execute with their own arguments and writers.
package cli

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/acdtcm/acdtcm/configs"
)

// App carries what every command needs: I/O streams, configuration and the logger.
type App struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Config *viper.Viper
	Logger *slog.Logger

	configFile string
	logLevel   string
	logFormat  string
	profiles   profiles
}

// commandFactories is filled by each command file's init function.
var commandFactories []func(*App) *cobra.Command

// register adds a top-level command constructor; call it from init.
func register(factory func(*App) *cobra.Command) {
	commandFactories = append(commandFactories, factory)
}

// NewRootCmd builds the acdtcm command tree writing to the given streams.
func NewRootCmd(in io.Reader, out, errOut io.Writer) (*cobra.Command, *App) {
	app := &App{In: in, Out: out, Err: errOut, Config: viper.New(), Logger: slog.New(slog.NewTextHandler(errOut, nil))}
	root := &cobra.Command{
		Use:   "acdtcm",
		Short: "Acne diagnosis toolkit joining dermatology with Traditional Chinese Medicine",
		Long: `acdtcm covers the lifecycle of an acne-diagnosis model: datasets, augmentation,
training, evaluation, quantization, diagnosis and serving.

Configuration precedence: flags > ACDTCM_* environment variables > config file
(--config, else ./acdtcm.yaml, else $XDG_CONFIG_HOME/acdtcm/config.yaml) > built-in defaults.
A flag --foo of "acdtcm dataset validate" is the key dataset.validate.foo in a config file
and ACDTCM_DATASET_VALIDATE_FOO in the environment.`,
		Example: `  acdtcm dataset import --format acne04-voc ../shared/datasets/acne04-detection --out data/acne04
  acdtcm dataset validate data/acne04
  acdtcm diagnose testdata/samples
  acdtcm version`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return app.setup(cmd)
		},
	}
	root.SetIn(in)
	root.SetOut(out)
	root.SetErr(errOut)
	pf := root.PersistentFlags()
	pf.StringVar(&app.configFile, "config", "", "config file (YAML); default ./acdtcm.yaml or $XDG_CONFIG_HOME/acdtcm/config.yaml")
	pf.StringVar(&app.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&app.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&app.profiles.cpuPath, "cpu-profile", "", "write a Go CPU profile of the command to this file (read it with `go tool pprof`)")
	pf.StringVar(&app.profiles.memPath, "mem-profile", "", "write a Go heap profile to this file when the command ends")
	for _, factory := range commandFactories {
		root.AddCommand(factory(app))
	}
	return root, app
}

// Execute runs acdtcm with args and returns the process exit code.
func Execute(args []string, in io.Reader, out, errOut io.Writer) int {
	root, app := NewRootCmd(in, out, errOut)
	root.SetArgs(args)
	err := root.Execute()
	if perr := app.profiles.stop(); perr != nil {
		fmt.Fprintln(errOut, "error:", perr)
		if err == nil {
			return 1
		}
	}
	if err != nil {
		var ee *ExitError
		if asExit(err, &ee) {
			if ee.Err != nil {
				fmt.Fprintln(errOut, "error:", ee.Err)
			}
			return ee.Code
		}
		fmt.Fprintln(errOut, "error:", err)
		return 2
	}
	return 0
}

// ExitError asks Execute to exit with Code after printing Err (when non-nil).
type ExitError struct {
	Code int
	Err  error
}

// Error returns the wrapped error's message.
func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *ExitError) Unwrap() error { return e.Err }

func asExit(err error, target **ExitError) bool {
	for err != nil {
		if e, ok := err.(*ExitError); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// setup loads the configuration layers, applies them to cmd's unset flags and builds the
// logger.
func (app *App) setup(cmd *cobra.Command) error {
	v := app.Config
	defaults, err := configs.FS.ReadFile(configs.Defaults)
	if err != nil {
		return fmt.Errorf("read built-in defaults: %w", err)
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(defaults)); err != nil {
		return fmt.Errorf("parse built-in defaults: %w", err)
	}
	if path := app.findConfigFile(cmd); path != "" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open config file: %w", err)
		}
		defer f.Close()
		if err := v.MergeConfig(f); err != nil {
			return fmt.Errorf("parse config file %s: %w", path, err)
		}
	}
	v.SetEnvPrefix("ACDTCM")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()
	if err := applyConfig(cmd, v); err != nil {
		return err
	}
	if err := app.setupLogger(); err != nil {
		return err
	}
	return app.profiles.start()
}

func (app *App) findConfigFile(cmd *cobra.Command) string {
	if app.configFile != "" {
		return app.configFile
	}
	if env := os.Getenv("ACDTCM_CONFIG"); env != "" {
		return env
	}
	candidates := []string{"acdtcm.yaml"}
	if xdg := os.Getenv("XDG_CONFIG_HOME"); xdg != "" {
		candidates = append(candidates, filepath.Join(xdg, "acdtcm", "config.yaml"))
	} else if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".config", "acdtcm", "config.yaml"))
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c
		}
	}
	return ""
}

// configKey is the viper key of a flag of cmd: the command path below the root plus the
// flag name, dot-separated. Persistent flags of the root are top-level keys.
func configKey(cmd *cobra.Command, f *pflag.Flag) string {
	if cmd.Root().PersistentFlags().Lookup(f.Name) == f {
		return f.Name
	}
	parts := strings.Fields(cmd.CommandPath())[1:]
	return strings.Join(append(parts, f.Name), ".")
}

// applyConfig sets every flag the user did not pass from the environment or config files.
func applyConfig(cmd *cobra.Command, v *viper.Viper) error {
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil {
			return
		}
		key := configKey(cmd, f)
		if !v.IsSet(key) {
			return
		}
		val := v.Get(key)
		var text string
		switch t := val.(type) {
		case []any:
			items := make([]string, len(t))
			for i, x := range t {
				items[i] = fmt.Sprint(x)
			}
			text = strings.Join(items, ",")
		case []string:
			text = strings.Join(t, ",")
		default:
			text = fmt.Sprint(t)
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			if err := sv.Replace(strings.Split(text, ",")); err != nil {
				firstErr = fmt.Errorf("config %s: %w", key, err)
			}
			return
		}
		if err := f.Value.Set(text); err != nil {
			firstErr = fmt.Errorf("config %s=%q: %w", key, text, err)
		}
	})
	return firstErr
}

func (app *App) setupLogger() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(app.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch app.logFormat {
	case "text":
		app.Logger = slog.New(slog.NewTextHandler(app.Err, opts))
	case "json":
		app.Logger = slog.New(slog.NewJSONHandler(app.Err, opts))
	default:
		return fmt.Errorf("--log-format must be text or json, got %q", app.logFormat)
	}
	return nil
}
