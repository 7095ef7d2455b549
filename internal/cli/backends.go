package cli

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/spf13/cobra"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

func init() { CompiledBackends = mlbackend.Compiled }

// addBackendFlag adds --backend to cmd. Its config key is "<command path>.backend" (e.g.
// train.backend, env ACDTCM_TRAIN_BACKEND); openBackend falls back to the top-level key
// "backend" (env ACDTCM_BACKEND) when neither the flag nor the command's key is set.
func addBackendFlag(cmd *cobra.Command, p *string) {
	mlbackend.AddFlag(cmd.Flags(), p)
}

// backendSpec resolves the backend spec for cmd: the --backend flag or its command key if set,
// else the top-level "backend" key, else the flag's value (its default).
func backendSpec(app *App, cmd *cobra.Command, flagValue string) string {
	f := cmd.Flags().Lookup(mlbackend.FlagName)
	if f != nil && !f.Changed && !app.Config.IsSet(configKey(cmd, f)) && app.Config.IsSet("backend") {
		return app.Config.GetString("backend")
	}
	return flagValue
}

// openBackend creates the ML backend chosen for cmd (see backendSpec).
func openBackend(app *App, cmd *cobra.Command, flagValue string) (backends.Backend, error) {
	spec := backendSpec(app, cmd, flagValue)
	app.Logger.Debug("opening ML backend", "spec", spec)
	return mlbackend.New(spec)
}
