package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// Version and Commit are set at build time with -ldflags "-X ...".
var (
	Version = "dev"
	Commit  = ""
)

// CompiledBackends reports the ML backends compiled into this binary; the backend package
// replaces it at init.
var CompiledBackends = func() []string { return nil }

func init() { register(newVersionCmd) }

func newVersionCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print version, commit, Go version and compiled-in backends",
		Example: "  acdtcm version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			commit := Commit
			if commit == "" {
				commit = vcsRevision()
			}
			fmt.Fprintf(app.Out, "acdtcm %s\ncommit: %s\ngo: %s %s/%s\nbackends: %s\n", Version, commit,
				runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.Join(CompiledBackends(), ", "))
			return nil
		},
	}
}

func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
