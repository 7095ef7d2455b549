package remote

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
)

// Flags are the command-line settings of the openai backend, shared by diagnose, eval and
// serve: `--backend openai --endpoint URL --model NAME`. The API key never is a flag (it
// would show in ps and shell history): it is read from the environment variable APIKeyEnv.
type Flags struct {
	Endpoint    string
	APIKeyEnv   string
	Concurrency int
	Timeout     time.Duration
	Retries     int
	MinPixels   int
	MaxPixels   int
	ImageFormat string
}

// AddFlags registers the openai backend flags on fs.
func AddFlags(fs *pflag.FlagSet, f *Flags) {
	pc := Config{}
	pc.defaults()
	fs.StringVar(&f.Endpoint, "endpoint", "", "with --backend openai: the OpenAI-compatible API base URL, e.g. http://vllm:8000/v1 (--model names the served model)")
	fs.StringVar(&f.APIKeyEnv, "api-key-env", DefaultAPIKeyEnv, "with --backend openai: environment variable holding the API key")
	fs.IntVar(&f.Concurrency, "concurrency", pc.Concurrency, "with --backend openai: most requests in flight")
	fs.DurationVar(&f.Timeout, "request-timeout", pc.Timeout, "with --backend openai: time limit of one request attempt")
	fs.IntVar(&f.Retries, "retries", pc.Retries, "with --backend openai: retries of a request after 408, 429, 5xx or a network error")
	fs.IntVar(&f.MinPixels, "image-min-pixels", 0, fmt.Sprintf("Qwen image smart_resize min_pixels used in training (0: with --model DIR the --adapter's training value, else the checkpoint's; with --backend openai %d)", pc.MinPixels))
	fs.IntVar(&f.MaxPixels, "image-max-pixels", 0, fmt.Sprintf("Qwen image smart_resize max_pixels used in training (0: with --model DIR the --adapter's training value, else the checkpoint's; with --backend openai %d)", pc.MaxPixels))
	fs.StringVar(&f.ImageFormat, "image-format", pc.ImageFormat, "with --backend openai: how photos are sent: png (lossless) or jpeg")
}

// Config returns the Config for model, reading the API key from the environment.
func (f Flags) Config(model string) Config {
	env := f.APIKeyEnv
	if env == "" {
		env = DefaultAPIKeyEnv
	}
	return Config{Endpoint: f.Endpoint, Model: model, APIKey: os.Getenv(env), Concurrency: f.Concurrency,
		Timeout: f.Timeout, Retries: f.Retries, MinPixels: f.MinPixels, MaxPixels: f.MaxPixels, ImageFormat: f.ImageFormat}
}
