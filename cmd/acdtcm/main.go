// Command acdtcm is the acne-diagnosis toolkit: see `acdtcm --help`.
package main

import (
	"os"

	"github.com/acdtcm/acdtcm/internal/cli"
	"github.com/acdtcm/acdtcm/internal/memlimit"
)

func main() {
	memlimit.Apply() // collect garbage before the machine runs out, not at twice the live heap
	os.Exit(cli.Execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
