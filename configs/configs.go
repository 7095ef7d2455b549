// Package configs embeds acdtcm's built-in defaults and data files (YAML) into the binary.
// Users override them with a config file, ACDTCM_* environment variables or flags.
package configs

import "embed"

// FS holds every YAML file of this directory.
//
//go:embed *.yaml
var FS embed.FS

// Defaults is the name of the built-in defaults file inside FS.
const Defaults = "defaults.yaml"
