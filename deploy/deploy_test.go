// Package deploy_test checks the container images, Kubernetes manifests and monitoring
// files of deploy/ against the code: they parse, reference only metric names and route
// labels that `acdtcm serve` really exports, probe paths that its router serves, and pass
// only flags and config keys that the acdtcm commands accept.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/acdtcm/acdtcm/internal/cli"
	"github.com/acdtcm/acdtcm/internal/remote"
	"github.com/acdtcm/acdtcm/internal/serve"
)

// obj is one decoded YAML document.
type obj = map[string]any

// get walks a path of map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// readDocs parses every YAML document of a file.
func readDocs(t *testing.T, path string) []obj {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []obj
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// manifests maps "Kind/name" to each Kubernetes object of deploy/kubernetes.
func manifests(t *testing.T) (map[string]obj, []string) {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string]obj{}
	for _, f := range files {
		for _, d := range readDocs(t, f) {
			kind, name := str(d, "kind"), str(d, "metadata", "name")
			if str(d, "apiVersion") == "" || kind == "" || (name == "" && kind != "Kustomization") {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name", f)
				continue
			}
			if _, dup := out[kind+"/"+name]; dup {
				t.Errorf("%s: %s/%s defined twice", f, kind, name)
			}
			out[kind+"/"+name] = d
		}
	}
	return out, files
}

func mustGet(t *testing.T, m map[string]obj, key string) obj {
	t.Helper()
	d, ok := m[key]
	if !ok {
		t.Fatalf("no %s in deploy/kubernetes", key)
	}
	return d
}

// server is an acdtcm serve instance (no model loaded) on a temporary SQLite store.
type server struct {
	srv *serve.Server
	ts  *httptest.Server
}

var (
	srvOnce sync.Once
	srvVal  *server
	srvErr  error
	srvDir  string // the store's temporary directory, removed by TestMain
)

// TestMain stops the shared server and removes its store once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if srvVal != nil {
		srvVal.ts.Close()
	}
	if srvDir != "" {
		os.RemoveAll(srvDir)
	}
	os.Exit(code)
}

func startServer(t *testing.T) *server {
	t.Helper()
	srvOnce.Do(func() {
		dir, err := os.MkdirTemp("", "acdtcm-deploy-test")
		if err != nil {
			srvErr = err
			return
		}
		srvDir = dir
		st, err := serve.OpenSQLite(context.Background(), filepath.Join(dir, "acdtcm.db"))
		if err != nil {
			srvErr = err
			return
		}
		s, err := serve.New(serve.Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			srvErr = err
			return
		}
		srvVal = &server{srv: s, ts: httptest.NewServer(s.Handler())}
	})
	if srvErr != nil {
		t.Fatalf("start serve: %v", srvErr)
	}
	return srvVal
}

func (s *server) do(t *testing.T, method, path string) int {
	t.Helper()
	req, err := http.NewRequest(method, s.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (s *server) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(s.ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedMetrics lists every series name serve can export: the metrics of serve.Metrics
// (found by reflection, so a new metric needs no change here) with _bucket/_sum/_count for
// histograms, plus the Go and process collectors as gathered.
func exportedMetrics(t *testing.T, s *server) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	mv := reflect.ValueOf(s.srv.Metrics()).Elem()
	for i := 0; i < mv.NumField(); i++ {
		c, ok := mv.Field(i).Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		_, isHist := c.(prometheus.Histogram)
		_, isHistVec := c.(*prometheus.HistogramVec)
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqNameRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names[m[1]] = true
			if isHist || isHistVec {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					names[m[1]+suf] = true
				}
			}
		}
	}
	fams, err := s.srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" || f.GetType().String() == "SUMMARY" {
			names[f.GetName()+"_sum"], names[f.GetName()+"_count"] = true, true
			names[f.GetName()+"_bucket"] = f.GetType().String() == "HISTOGRAM"
		}
	}
	if !names["acdtcm_http_requests_total"] || !names["go_goroutines"] {
		t.Fatalf("metric discovery failed: %v", names)
	}
	return names
}

// metricRE finds metric names in PromQL: the exporter's prefixes only (functions, label
// names and keywords never start with them).
var metricRE = regexp.MustCompile(`\b(?:acdtcm|go|process)_[a-zA-Z0-9_]+`)

// routeRE finds route label matchers.
var routeRE = regexp.MustCompile(`route\s*=\s*\\?"([^"\\]+)\\?"`)

// promQL collects every PromQL expression of the monitoring files and the HPA.
func promQL(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, d := range readDocs(t, "monitoring/alerts.yaml") {
		groups := list(d, "groups")
		if len(groups) == 0 {
			t.Fatal("monitoring/alerts.yaml: no rule groups")
		}
		for _, g := range groups {
			for _, r := range list(g, "rules") {
				name, expr := str(r, "alert"), str(r, "expr")
				if name == "" || expr == "" || str(r, "labels", "severity") == "" || str(r, "annotations", "summary") == "" {
					t.Errorf("alerts.yaml: rule %v lacks alert, expr, labels.severity or annotations.summary", r)
				}
				out["alerts.yaml "+name] = append(out["alerts.yaml "+name], expr)
			}
		}
	}
	data, err := os.ReadFile("monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json is not valid JSON: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatal("grafana-dashboard.json: no uid or no panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("grafana panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out["grafana "+p.Title] = append(out["grafana "+p.Title], tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Definition != "" {
			out["grafana variable"] = append(out["grafana variable"], v.Definition)
		}
	}
	return out
}

func TestMonitoringUsesExportedMetricsAndRoutes(t *testing.T) {
	s := startServer(t)
	names := exportedMetrics(t, s)
	exprs := promQL(t)
	hpa := readDocs(t, "kubernetes/hpa.yaml")[0]
	for _, m := range list(hpa, "spec", "metrics") {
		if n := str(m, "pods", "metric", "name"); n != "" {
			exprs["hpa pods metric"] = append(exprs["hpa pods metric"], n)
		}
	}
	used := map[string]bool{}
	routes := map[string]bool{}
	for where, list := range exprs {
		for _, e := range list {
			found := metricRE.FindAllString(e, -1)
			if len(found) == 0 && !strings.Contains(e, "up{") {
				t.Errorf("%s: no acdtcm metric in %q", where, e)
			}
			for _, n := range found {
				used[n] = true
				if !names[n] {
					t.Errorf("%s uses %s, which acdtcm serve does not export", where, n)
				}
			}
			for _, m := range routeRE.FindAllStringSubmatch(e, -1) {
				routes[m[1]] = true
			}
		}
	}
	// Every route label must be one serve records: request it, then find it in /metrics.
	for r := range routes {
		method, path, ok := strings.Cut(r, " ")
		if !ok {
			t.Errorf("route label %q is not \"METHOD /path\"", r)
			continue
		}
		s.do(t, method, strings.ReplaceAll(path, "{id}", "x"))
		if !strings.Contains(s.scrape(t), `route="`+r+`"`) {
			t.Errorf("route label %q never appears in serve's metrics", r)
		}
	}
	for _, want := range []string{"acdtcm_http_requests_total", "acdtcm_http_request_duration_seconds_bucket", "acdtcm_inference_queue_depth"} {
		if !used[want] {
			t.Errorf("monitoring does not use %s (error rate, latency, queue saturation)", want)
		}
	}
	t.Logf("%d metric names and %d route labels checked", len(used), len(routes))
}

// expandVars replaces Kubernetes $(VAR) references with sample values.
func expandVars(args []string, env map[string]string) []string {
	re := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = re.ReplaceAllStringFunc(a, func(m string) string {
			if v, ok := env[m[2:len(m)-1]]; ok {
				return v
			}
			return m
		})
	}
	return out
}

// parseArgs parses args (without the program name) with the real acdtcm command tree and
// returns the command, or an error for an unknown command, flag or bad value.
func parseArgs(args []string) (*cobra.Command, error) {
	root, _ := cli.NewRootCmd(strings.NewReader(""), io.Discard, io.Discard)
	cmd, rest, err := root.Find(args)
	if err != nil {
		return nil, err
	}
	if cmd == root {
		return nil, fmt.Errorf("no acdtcm command in %v", args)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return nil, fmt.Errorf("acdtcm %s: %w", cmd.Name(), err)
	}
	if cmd.Args != nil {
		if err := cmd.Args(cmd, cmd.Flags().Args()); err != nil {
			return nil, fmt.Errorf("acdtcm %s: %w", cmd.Name(), err)
		}
	}
	return cmd, nil
}

func containers(d obj) []any {
	if c := list(d, "spec", "template", "spec", "containers"); c != nil {
		return c
	}
	return nil
}

func TestManifestsMatchTheCode(t *testing.T) {
	m, files := manifests(t)
	s := startServer(t)

	// kustomization lists every manifest file.
	kust := mustGet(t, m, "Kustomization/")
	var listed []string
	for _, r := range list(kust, "resources") {
		listed = append(listed, "kubernetes/"+r.(string))
	}
	for _, f := range files {
		if f != "kubernetes/kustomization.yaml" && !slices.Contains(listed, f) {
			t.Errorf("%s is not in kustomization.yaml resources", f)
		}
	}
	for _, f := range listed {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", f, err)
		}
	}

	dep := mustGet(t, m, "Deployment/acdtcm")
	podLabels := get(dep, "spec", "template", "metadata", "labels").(obj)
	matches := func(sel any) bool {
		sm, ok := sel.(obj)
		if !ok || len(sm) == 0 {
			return false
		}
		for k, v := range sm {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	if !matches(get(dep, "spec", "selector", "matchLabels")) {
		t.Error("Deployment selector does not match its pod labels")
	}
	if !matches(get(mustGet(t, m, "Service/acdtcm"), "spec", "selector")) {
		t.Error("Service selector does not match the Deployment's pods")
	}
	if !matches(get(mustGet(t, m, "PodDisruptionBudget/acdtcm"), "spec", "selector", "matchLabels")) {
		t.Error("PodDisruptionBudget selector does not match the Deployment's pods")
	}
	hpa := mustGet(t, m, "HorizontalPodAutoscaler/acdtcm")
	if str(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" || str(hpa, "spec", "scaleTargetRef", "name") != "acdtcm" {
		t.Error("HPA does not target Deployment/acdtcm")
	}
	if str(mustGet(t, m, "Service/acdtcm"), "spec", "ports", 0, "targetPort") != "http" {
		t.Error("Service targetPort is not the container port named http")
	}

	c := containers(dep)[0]
	args := toStrings(list(c, "args"))
	cmd, err := parseArgs(args)
	if err != nil || cmd.Name() != "serve" {
		t.Fatalf("Deployment args %v: %v", args, err)
	}
	addr, _ := cmd.Flags().GetString("addr")
	_, port, _ := strings.Cut(addr, ":")
	if cp := get(c, "ports", 0, "containerPort"); str(c, "ports", 0, "name") != "http" || fmt.Sprint(cp) != port {
		t.Errorf("container port %v (%s) does not match --addr %s", cp, str(c, "ports", 0, "name"), addr)
	}
	if v, _ := cmd.Flags().GetString("auth"); v != "apikey" {
		t.Errorf("--auth %s: a cluster-facing server needs apikey", v)
	}

	// Probes: real routes of serve's router, on the http port.
	for _, probe := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
		path := str(c, probe, "httpGet", "path")
		if path == "" || str(c, probe, "httpGet", "port") != "http" {
			t.Errorf("%s: want an httpGet on port http, got %v", probe, get(c, probe))
			continue
		}
		code := s.do(t, http.MethodGet, path)
		if !strings.Contains(s.scrape(t), `route="GET `+path+`"`) {
			t.Errorf("%s path %s is not a route of acdtcm serve (HTTP %d)", probe, path, code)
		}
		want := []int{http.StatusOK}
		if probe == "readinessProbe" {
			want = append(want, http.StatusServiceUnavailable) // 503 until the model is loaded
		}
		if !slices.Contains(want, code) {
			t.Errorf("%s %s answered HTTP %d, want %v", probe, path, code, want)
		}
	}
	if str(c, "readinessProbe", "httpGet", "path") != "/api/v1/ready" || str(c, "livenessProbe", "httpGet", "path") != "/api/v1/health" {
		t.Error("readiness must probe /api/v1/ready and liveness /api/v1/health")
	}

	// Security context: non-root, read-only root, no capabilities.
	if get(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true ||
		get(c, "securityContext", "readOnlyRootFilesystem") != true ||
		get(c, "securityContext", "allowPrivilegeEscalation") != false ||
		fmt.Sprint(get(c, "securityContext", "capabilities", "drop")) != "[ALL]" {
		t.Error("Deployment security context is not restricted")
	}
	if get(c, "resources", "requests", "cpu") == nil || get(c, "resources", "limits", "memory") == nil {
		t.Error("Deployment container lacks cpu requests or memory limits")
	}

	// ConfigMap keys are real config keys with valid values; the config file is passed.
	cfgText := str(mustGet(t, m, "ConfigMap/acdtcm-config"), "data", "config.yaml")
	var cfg obj
	if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil {
		t.Fatalf("ConfigMap config.yaml: %v", err)
	}
	checkConfigKeys(t, cfg)
	if !slices.Contains(args, "--config=/etc/acdtcm/config.yaml") {
		t.Error("Deployment does not pass the ConfigMap's file with --config")
	}
	var mountsConfig bool
	for _, vm := range list(c, "volumeMounts") {
		mountsConfig = mountsConfig || str(vm, "mountPath") == "/etc/acdtcm"
	}
	if !mountsConfig {
		t.Error("the ConfigMap is not mounted at /etc/acdtcm")
	}
	if shutdown, ok := get(cfg, "serve", "shutdown-timeout").(string); ok {
		grace := fmt.Sprint(get(dep, "spec", "template", "spec", "terminationGracePeriodSeconds"))
		if d, _ := parseDuration(shutdown); d >= atoiOr(grace, 30) {
			t.Errorf("serve.shutdown-timeout %s is not below terminationGracePeriodSeconds %s", shutdown, grace)
		}
	}

	// Secret keys are the environment variables acdtcm reads.
	sec := mustGet(t, m, "Secret/acdtcm-secrets")
	serveCmd, _ := parseArgs([]string{"serve"})
	help := serveCmd.Long + serveCmd.Flags().FlagUsages()
	for key := range get(sec, "stringData").(obj) {
		switch {
		case key == remote.DefaultAPIKeyEnv:
		case strings.HasPrefix(key, "ACDTCM_SERVE_"):
			flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(key, "ACDTCM_SERVE_"), "_", "-"))
			if serveCmd.Flags().Lookup(flag) == nil {
				t.Errorf("Secret key %s maps to serve.%s, which is not a serve flag", key, flag)
			}
		case !strings.Contains(help, "$"+key):
			t.Errorf("Secret key %s is not an environment variable acdtcm serve reads", key)
		}
	}

	// The Indexed Job: real diagnose flags, shard count = completions = parallelism.
	job := mustGet(t, m, "Job/acdtcm-diagnose")
	if str(job, "spec", "completionMode") != "Indexed" {
		t.Error("the batch Job is not an Indexed Job")
	}
	n := fmt.Sprint(get(job, "spec", "completions"))
	if fmt.Sprint(get(job, "spec", "parallelism")) != n {
		t.Errorf("Job parallelism %v != completions %s", get(job, "spec", "parallelism"), n)
	}
	jc := containers(job)[0]
	env := map[string]string{}
	for _, e := range list(jc, "env") {
		if str(e, "valueFrom", "fieldRef", "fieldPath") == "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
			env[str(e, "name")] = "0"
		}
	}
	if len(env) == 0 {
		t.Error("the Job does not read its completion index")
	}
	jargs := toStrings(list(jc, "args"))
	jcmd, err := parseArgs(expandVars(jargs, env))
	if err != nil || jcmd.Name() != "diagnose" {
		t.Fatalf("Job args %v: %v", jargs, err)
	}
	if shard, _ := jcmd.Flags().GetString("shard"); !strings.HasSuffix(shard, "/"+n) {
		t.Errorf("--shard %s does not split into completions=%s shards", shard, n)
	}
	if out, _ := jcmd.Flags().GetString("output"); !strings.Contains(out, "0") {
		t.Errorf("--output %s is not per shard", out)
	}
	// The commented --backend openai variants parse too (when the command has the flags).
	for _, tc := range []struct {
		file string
		args []string
		cmd  *cobra.Command
	}{{"kubernetes/job-diagnose.yaml", expandVars(jargs, env), jcmd}, {"kubernetes/deployment.yaml", args, cmd}} {
		extra := commentedFlags(t, tc.file)
		if len(extra) == 0 {
			t.Errorf("%s: no commented --backend=openai variant", tc.file)
			continue
		}
		if tc.cmd.Flags().Lookup("endpoint") == nil && tc.cmd.Name() == "serve" {
			t.Logf("acdtcm serve has no --endpoint yet: not checking %v", extra)
			continue
		}
		if _, err := parseArgs(append(append([]string(nil), tc.args...), extra...)); err != nil {
			t.Errorf("%s: the commented variant %v: %v", tc.file, extra, err)
		}
	}
}

// commentedFlags returns the flags of a "#   --backend=openai ..." comment line.
func commentedFlags(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), "#"))
		if strings.HasPrefix(l, "--backend=openai") {
			return strings.Fields(l)
		}
	}
	return nil
}

func toStrings(l []any) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = fmt.Sprint(v)
	}
	return out
}

func atoiOr(s string, def int) float64 {
	n, err := strconv.Atoi(s)
	if err != nil {
		return float64(def)
	}
	return float64(n)
}

// parseDuration returns seconds.
func parseDuration(s string) (float64, error) {
	var d pflag.FlagSet
	v := d.Duration("d", 0, "")
	if err := d.Set("d", s); err != nil {
		return 0, err
	}
	return v.Seconds(), nil
}

// checkConfigKeys checks that every key of a config file is a flag of the command its path
// names (or a root flag) and that its value parses as that flag's type.
func checkConfigKeys(t *testing.T, cfg obj) {
	t.Helper()
	var walk func(prefix []string, m obj)
	walk = func(prefix []string, m obj) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if sub, ok := m[k].(obj); ok {
				walk(append(prefix, k), sub)
				continue
			}
			root, _ := cli.NewRootCmd(strings.NewReader(""), io.Discard, io.Discard)
			cmd := root
			if len(prefix) > 0 {
				c, _, err := root.Find(prefix)
				if err != nil || c == root {
					t.Errorf("config key %s.%s: no command %q", strings.Join(prefix, "."), k, strings.Join(prefix, " "))
					continue
				}
				cmd = c
			}
			f := cmd.Flags().Lookup(k)
			if f == nil {
				f = root.PersistentFlags().Lookup(k)
			}
			if f == nil {
				t.Errorf("config key %s: acdtcm %s has no --%s", strings.Join(append(prefix, k), "."), strings.Join(prefix, " "), k)
				continue
			}
			if err := f.Value.Set(fmt.Sprint(m[k])); err != nil {
				t.Errorf("config key %s: value %v: %v", strings.Join(append(prefix, k), "."), m[k], err)
			}
		}
	}
	walk(nil, cfg)
}

// dockerfile reads the instructions of a Dockerfile (continuation lines joined).
func dockerfile(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

func TestDockerfiles(t *testing.T) {
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file, makeTarget, backendPrefix string
	}{
		{"../Dockerfile", "build", ""},
		{"../Dockerfile.cuda", "build-xla", "xla:/"},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			ins := dockerfile(t, tc.file)
			var stages int
			var entry, cmdArgs []string
			var user, copied, backend string
			for _, in := range ins {
				op, rest, _ := strings.Cut(in, " ")
				switch strings.ToUpper(op) {
				case "FROM":
					stages++
				case "ENTRYPOINT":
					if err := json.Unmarshal([]byte(rest), &entry); err != nil {
						t.Errorf("ENTRYPOINT is not exec form: %v", err)
					}
				case "CMD":
					if err := json.Unmarshal([]byte(rest), &cmdArgs); err != nil {
						t.Errorf("CMD is not exec form: %v", err)
					}
				case "USER":
					user = rest
				case "COPY":
					if strings.Contains(rest, "/out/acdtcm ") {
						f := strings.Fields(rest)
						copied = f[len(f)-1]
					}
				case "RUN":
					if strings.Contains(rest, "make "+tc.makeTarget+" ") && !strings.Contains(string(makefile), "\n"+tc.makeTarget+":") {
						t.Errorf("make %s is not a Makefile target", tc.makeTarget)
					}
				case "ENV":
					if m := regexp.MustCompile(`ACDTCM_BACKEND=(\S+)`).FindStringSubmatch(rest); m != nil {
						backend = m[1]
					}
				}
			}
			if stages < 2 {
				t.Errorf("%d stages, want a multi-stage build", stages)
			}
			if !strings.Contains(strings.Join(ins, "\n"), "make "+tc.makeTarget+" ") {
				t.Errorf("the image is not built with make %s", tc.makeTarget)
			}
			if len(entry) != 1 || entry[0] != copied {
				t.Errorf("ENTRYPOINT %v is not the copied binary %s", entry, copied)
			}
			if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
				t.Errorf("USER %q: the image must run as non-root", user)
			}
			c, err := parseArgs(cmdArgs)
			if err != nil || c.Name() != "serve" {
				t.Errorf("CMD %v: %v", cmdArgs, err)
			}
			if !strings.HasPrefix(backend, tc.backendPrefix) {
				t.Errorf("ACDTCM_BACKEND %q, want prefix %q", backend, tc.backendPrefix)
			}
			if backend != "" {
				// The backend key is a real config key: the top-level "backend" of backendSpec.
				root, _ := cli.NewRootCmd(strings.NewReader(""), io.Discard, io.Discard)
				srv, _, _ := root.Find([]string{"serve"})
				if srv.Flags().Lookup("backend") == nil {
					t.Error("acdtcm serve has no --backend for ACDTCM_BACKEND to default")
				}
			}
		})
	}
}

func TestDocsAndReadmeExist(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".yaml") && !strings.Contains(path, "testdata") {
			readDocs(t, path) // every YAML file parses
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"README.md", "../docs/vllm.md"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
