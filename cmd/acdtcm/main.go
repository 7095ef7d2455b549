// Command acdtcm is the acne-diagnosis toolkit: see `acdtcm --help`.
package main

import (
	"os"

	"github.com/acdtcm/acdtcm/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
