package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/flashsale/flashsale/api"
	"github.com/flashsale/flashsale/engine"
)

// These tests keep deploy/ honest: the dashboard and the Prometheus rules
// name only metrics the binary exports, the compose file and the Kubernetes
// manifests set only environment variables the binary reads and run only
// commands it accepts, with settings it accepts.

var updateDeploy = flag.Bool("update-deploy", false,
	"rewrite deploy/k8s/monitoring/prometheusrule.yaml from deploy/prometheus/rules.yml")

const deployDir = "../../deploy"

// The metrics the issue asks the dashboard to show during a sale.
var mustShow = []string{
	"flashsale_reservations_total",
	"flashsale_reserve_batch_size",
	"flashsale_reserve_queue_depth",
	"flashsale_reserve_shed_total",
	"flashsale_redis_script_duration_seconds",
}

// Metric kinds as far as PromQL cares.
const (
	kindCounter   = "counter"
	kindGauge     = "gauge"
	kindHistogram = "histogram"
	kindSummary   = "summary"
)

// recordingRegisterer registers on a real registry and remembers every
// collector, so that vectors without children still show their names.
type recordingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// flashsaleMetrics returns every flashsale_* metric the binary registers
// (api.NewMetrics and api.RegisterCoalescer, as Main.Run calls them) and
// its kind.
func flashsaleMetrics(t *testing.T) map[string]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	rec := &recordingRegisterer{Registerer: reg}
	if _, err := api.NewMetrics(rec); err != nil {
		t.Fatal(err)
	}
	if err := api.RegisterCoalescer(rec, func() engine.CoalesceStats { return engine.CoalesceStats{} }); err != nil {
		t.Fatal(err)
	}
	// Metrics without labels are gathered with their type; vectors without
	// children are not, and take theirs from the vector's Go type.
	gathered := map[string]string{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		gathered[mf.GetName()] = strings.ToLower(mf.GetType().String())
	}
	out := map[string]string{}
	for _, c := range rec.collectors {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqNameRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no fqName in %s", d)
			}
			kind := gathered[m[1]]
			switch c.(type) {
			case *prometheus.HistogramVec:
				kind = kindHistogram
			case *prometheus.SummaryVec:
				kind = kindSummary
			case *prometheus.CounterVec:
				kind = kindCounter
			case *prometheus.GaugeVec:
				kind = kindGauge
			}
			if kind == "" {
				t.Fatalf("cannot tell the type of metric %s (%T)", m[1], c)
			}
			out[m[1]] = kind
		}
	}
	if len(out) < len(mustShow) {
		t.Fatalf("only %d metrics registered: %v", len(out), out)
	}
	return out
}

// servedMetrics starts the binary's sweep worker and reads the families of
// its /metrics (# TYPE lines): the Go and process collectors as Main wires
// them, and the flashsale metrics that exist before any traffic.
func servedMetrics(t *testing.T) map[string]string {
	t.Helper()
	base, _ := runMain(t, nil, "sweep")
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// exportedMetrics is every metric name the binary exports, with its kind.
func exportedMetrics(t *testing.T) map[string]string {
	t.Helper()
	known := flashsaleMetrics(t)
	served := servedMetrics(t)
	for name, kind := range served {
		if strings.HasPrefix(name, "flashsale_") {
			if known[name] != kind {
				t.Errorf("/metrics has %s as %s, the registered collectors as %q", name, kind, known[name])
			}
			continue
		}
		known[name] = kind
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "flashsale_reserve_queue_depth"} {
		if _, ok := served[name]; !ok {
			t.Errorf("the sweep worker's /metrics lacks %s", name)
		}
	}
	return known
}

var metricRefRE = regexp.MustCompile(`\b(?:flashsale|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]`)

// checkMetricRefs reports every metric name in expr that the binary does
// not export, or that is used in a way its kind has no series for.
func checkMetricRefs(known map[string]string, expr string) []string {
	var problems []string
	for _, name := range metricRefRE.FindAllString(expr, -1) {
		if err := checkMetric(known, name); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

func checkMetric(known map[string]string, name string) error {
	if kind, ok := known[name]; ok {
		if kind == kindHistogram {
			return fmt.Errorf("%s is a histogram: use %[1]s_bucket, %[1]s_sum or %[1]s_count", name)
		}
		return nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch known[base] {
		case kindHistogram:
			return nil
		case kindSummary:
			if suffix != "_bucket" {
				return nil
			}
			return fmt.Errorf("%s: %s is a summary, it has no buckets", name, base)
		}
	}
	return fmt.Errorf("%s is not a metric the binary exports", name)
}

// --- the dashboard --------------------------------------------------------------

func TestDeployDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(deployDir, "grafana", "flashsale.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID           string `json:"uid"`
		Title         string `json:"title"`
		SchemaVersion int    `json:"schemaVersion"`
		Panels        []panel
		Templating    struct {
			List []struct {
				Name, Type string
				Query      any
				Datasource *datasourceRef
			}
		}
		Annotations struct {
			List []struct {
				Name       string
				Expr       string
				Datasource *datasourceRef
			}
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("flashsale.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both are needed to import and link the dashboard", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: data source references by uid need 36 or later", d.SchemaVersion)
	}

	// A Prometheus data source variable, so that importing asks nothing
	// and every panel follows the choice.
	const ds = "${datasource}"
	var hasDS bool
	var exprs []string
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
		if v.Type == "query" {
			if v.Datasource == nil || v.Datasource.UID != ds {
				t.Errorf("variable %s does not query %s", v.Name, ds)
			}
			if q, ok := v.Query.(map[string]any); ok {
				exprs = append(exprs, fmt.Sprint(q["query"]))
			} else {
				exprs = append(exprs, fmt.Sprint(v.Query))
			}
		}
	}
	if !hasDS {
		t.Error(`no template variable "datasource" of type datasource querying prometheus`)
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			if a.Datasource == nil || a.Datasource.UID != ds {
				t.Errorf("annotation %s does not query %s", a.Name, ds)
			}
			exprs = append(exprs, a.Expr)
		}
	}

	panels := flattenPanels(d.Panels)
	if len(panels) < 10 {
		t.Fatalf("%d panels", len(panels))
	}
	ids := map[int]string{}
	shown := map[string]bool{}
	rangeRE := regexp.MustCompile(`\[([^\]]*)\]`)
	for _, p := range panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g.W < 1 || g.X < 0 || g.X+g.W > 24 || g.H < 1 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource == nil || p.Datasource.UID != ds {
			t.Errorf("panel %q: data source %+v, want uid %s", p.Title, p.Datasource, ds)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q: target %s has no expr", p.Title, tg.RefID)
				continue
			}
			if tg.Datasource != nil && tg.Datasource.UID != ds {
				t.Errorf("panel %q: target %s queries %+v", p.Title, tg.RefID, tg.Datasource)
			}
			// Windows follow the scrape interval and the zoom, never a
			// number that is wrong for some Prometheus.
			for _, m := range rangeRE.FindAllStringSubmatch(tg.Expr, -1) {
				if m[1] != "$__rate_interval" && m[1] != "$__range" {
					t.Errorf("panel %q: range [%s] in %q; use $__rate_interval", p.Title, m[1], tg.Expr)
				}
			}
			exprs = append(exprs, tg.Expr)
			for _, name := range metricRefRE.FindAllString(tg.Expr, -1) {
				shown[trimSeriesSuffix(name)] = true
			}
		}
	}

	known := exportedMetrics(t)
	for _, e := range exprs {
		for _, p := range checkMetricRefs(known, e) {
			t.Errorf("dashboard: %s (in %q)", p, e)
		}
	}
	for _, name := range mustShow {
		if !shown[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
	// A metric worth exporting is worth a panel: this fails when a metric
	// is added to api/metrics.go until deploy/grafana/flashsale.json shows it.
	for name := range flashsaleMetrics(t) {
		if !shown[name] {
			t.Errorf("no panel shows %s: add one to deploy/grafana/flashsale.json", name)
		}
	}
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *datasourceRef
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *datasourceRef
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// flattenPanels lists panels with those of collapsed rows.
func flattenPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenPanels(p.Panels)...)
	}
	return out
}

func trimSeriesSuffix(name string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			return b
		}
	}
	return name
}

// --- Prometheus ------------------------------------------------------------------

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

var (
	durationRE   = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
	recordNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*$`)
	recordRefRE  = regexp.MustCompile(`\bflashsale:[a-zA-Z0-9_:]+`)
	jobRefRE     = regexp.MustCompile(`job="(flashsale-[a-z]+)"`)
)

func readRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	decodeStrict(t, filepath.Join(deployDir, "prometheus", "rules.yml"), &rf)
	return rf
}

func TestDeployPrometheusRules(t *testing.T) {
	rf := readRules(t)
	if len(rf.Groups) == 0 {
		t.Fatal("rules.yml has no groups")
	}
	known := exportedMetrics(t)
	records := map[string]bool{}
	alerts := map[string]bool{}
	groups := map[string]bool{}
	var exprs []string
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q empty or repeated", g.Name)
		}
		groups[g.Name] = true
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			if (r.Record == "") == (r.Alert == "") {
				t.Errorf("group %s: a rule needs exactly one of record and alert: %+v", g.Name, r)
			}
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("rule %s has no expr", name)
			}
			exprs = append(exprs, r.Expr)
			for _, p := range checkMetricRefs(known, r.Expr) {
				t.Errorf("rule %s: %s", name, p)
			}
			if r.Record != "" {
				if !recordNameRE.MatchString(r.Record) {
					t.Errorf("recording rule %s: name is not level:metric:operations", r.Record)
				}
				records[r.Record] = true
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			if !durationRE.MatchString(r.For) {
				t.Errorf("alert %s: for %q is not a duration: every alert should hold for a while before it fires", r.Alert, r.For)
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" && sev != "info" {
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, sev)
			}
			if strings.TrimSpace(r.Annotations["summary"]) == "" || strings.TrimSpace(r.Annotations["description"]) == "" {
				t.Errorf("alert %s needs annotations summary and description", r.Alert)
			}
		}
	}
	for _, e := range exprs {
		for _, ref := range recordRefRE.FindAllString(e, -1) {
			if !records[ref] {
				t.Errorf("%s is used but not recorded in rules.yml", ref)
			}
		}
	}
	// What an SRE needs during a sale (deploy/README.md, "Alerts").
	for _, a := range []string{
		"FlashsaleReservationsShed", "FlashsaleHTTPErrors", "FlashsaleReserveLatencyHigh",
		"FlashsaleOutboxLagGrowing", "FlashsaleRelayStalled", "FlashsaleOrdersConsumerStalled",
		"FlashsaleNotifyConsumerStalled", "FlashsaleSweepErrors", "FlashsaleWebhookFailures",
		"FlashsaleWebhooksAllFailing", "FlashsaleInstanceDown", "FlashsaleComponentDown",
	} {
		if !alerts[a] {
			t.Errorf("rules.yml lacks alert %s", a)
		}
	}
	readme, err := os.ReadFile(filepath.Join(deployDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for a := range alerts {
		if !bytes.Contains(readme, []byte(a)) {
			t.Errorf("deploy/README.md does not say what to do about %s", a)
		}
	}
}

// TestDeployPrometheusConfig checks that the compose stack's Prometheus
// loads the rules, scrapes every flashsale service under the job names the
// rules use, on the port the services listen on.
func TestDeployPrometheusConfig(t *testing.T) {
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string
				Port  int
			} `yaml:"dns_sd_configs"`
			StaticConfigs []struct{ Targets []string } `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	decode(t, filepath.Join(deployDir, "prometheus", "prometheus.yml"), &pc)
	compose := readCompose(t)

	mounts := map[string]string{}
	for _, v := range compose.Services["prometheus"].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			mounts[parts[1]] = parts[0]
		}
	}
	if len(pc.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	for _, rf := range pc.RuleFiles {
		if mounts[rf] != "./prometheus/rules.yml" {
			t.Errorf("rule file %s is not deploy/prometheus/rules.yml mounted by compose.yaml (mounts: %v)", rf, mounts)
		}
	}

	jobs := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		jobs[sc.JobName] = true
		for _, sd := range sc.DNSSDConfigs {
			for _, name := range sd.Names {
				svc, ok := compose.Services[name]
				if !ok {
					t.Errorf("job %s scrapes %s, which is not a compose service", sc.JobName, name)
					continue
				}
				if want := "flashsale-" + name; sc.JobName != want {
					t.Errorf("job %s scrapes service %s: name it %s, as the rules and the PodMonitor do", sc.JobName, name, want)
				}
				if port := listenPort(t, svc.env(t)["FLASHSALE_HTTP_ADDR"]); port != sd.Port {
					t.Errorf("job %s scrapes port %d, %s listens on %d", sc.JobName, sd.Port, name, port)
				}
			}
		}
	}
	for _, name := range compose.flashsaleServices() {
		// migrate exits; services in a profile (loadtest) run on demand.
		if name != "migrate" && len(compose.Services[name].Profiles) == 0 && !jobs["flashsale-"+name] {
			t.Errorf("prometheus.yml does not scrape %s", name)
		}
	}
	rules, err := os.ReadFile(filepath.Join(deployDir, "prometheus", "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range jobRefRE.FindAllStringSubmatch(string(rules), -1) {
		if !jobs[m[1]] {
			t.Errorf("rules.yml refers to job %s, which prometheus.yml does not have", m[1])
		}
	}
}

// TestDeployPrometheusRule keeps the Prometheus Operator's copy of the
// rules (deploy/k8s/monitoring/prometheusrule.yaml) equal to rules.yml;
// -update-deploy rewrites it.
func TestDeployPrometheusRule(t *testing.T) {
	src := filepath.Join(deployDir, "prometheus", "rules.yml")
	dst := filepath.Join(deployDir, "k8s", "monitoring", "prometheusrule.yaml")
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var groups *yaml.Node
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "groups" {
			groups = root.Content[i+1]
		}
	}
	if groups == nil {
		t.Fatal("rules.yml has no groups")
	}
	if *updateDeploy {
		var out bytes.Buffer
		out.WriteString(`# The alerts and recording rules of deploy/prometheus/rules.yml for the
# Prometheus Operator. Generated: edit rules.yml, then run
#   go test ./cmd/flashsale -run TestDeployPrometheusRule -update-deploy
# Your Prometheus may select rules by a label (e.g. release: kube-prometheus-stack): add it.
`)
		enc := yaml.NewEncoder(&out)
		enc.SetIndent(2)
		groups.HeadComment, groups.FootComment = "", ""
		obj := map[string]any{
			"apiVersion": "monitoring.coreos.com/v1",
			"kind":       "PrometheusRule",
			"metadata": map[string]any{
				"name":   "flashsale",
				"labels": map[string]any{"app.kubernetes.io/name": "flashsale"},
			},
			"spec": map[string]any{"groups": groups},
		}
		if err := enc.Encode(obj); err != nil {
			t.Fatal(err)
		}
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var want struct{ Groups any }
	decode(t, src, &want)
	var got struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string
		Spec       struct{ Groups any }
	}
	decode(t, dst, &got)
	if got.APIVersion != "monitoring.coreos.com/v1" || got.Kind != "PrometheusRule" {
		t.Errorf("%s: %s %s, want monitoring.coreos.com/v1 PrometheusRule", dst, got.APIVersion, got.Kind)
	}
	if !reflect.DeepEqual(got.Spec.Groups, want.Groups) {
		t.Errorf("%s differs from rules.yml: run go test ./cmd/flashsale -run TestDeployPrometheusRule -update-deploy", dst)
	}
}

// --- every YAML and JSON file ------------------------------------------------------

func TestDeployFilesParse(t *testing.T) {
	var n int
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yml", ".yaml":
			docs := decodeAll(t, path)
			if len(docs) == 0 {
				t.Errorf("%s: no YAML document", path)
			}
			n++
		case ".json":
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if !json.Valid(raw) {
				t.Errorf("%s is not valid JSON", path)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("only %d YAML and JSON files under deploy/", n)
	}
}

// --- the compose file ----------------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string   `yaml:"image"`
	Build       any      `yaml:"build"`
	Entrypoint  []string `yaml:"entrypoint"`
	Command     any      `yaml:"command"`
	Profiles    []string `yaml:"profiles"`
	Environment any      `yaml:"environment"`
	Volumes     []string `yaml:"volumes"`
	DependsOn   any      `yaml:"depends_on"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	decode(t, filepath.Join(deployDir, "compose.yaml"), &c)
	if len(c.Services) == 0 {
		t.Fatal("compose.yaml has no services")
	}
	return c
}

// flashsaleServices names the services that run the flashsale image.
func (c composeFile) flashsaleServices() []string {
	var out []string
	for name, s := range c.Services {
		if s.Build != nil || strings.HasPrefix(s.Image, "flashsale:") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// composeInterp is ${NAME}, ${NAME:-default}, ${NAME-default},
// ${NAME:?message} or ${NAME?message}.
var composeInterp = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// composeTestEnv stands for the variables a user must export before
// docker compose up.
var composeTestEnv = map[string]string{"FLASHSALE_ADMIN_TOKEN": "compose-test-admin-token-0123456789"}

// env is the service's environment after interpolation.
func (s composeService) env(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	add := func(k, v string) {
		out[k] = composeInterp.ReplaceAllStringFunc(v, func(ref string) string {
			m := composeInterp.FindStringSubmatch(ref)
			if v, ok := composeTestEnv[m[1]]; ok {
				return v
			}
			if strings.HasSuffix(m[2], "-") {
				return m[3]
			}
			t.Errorf("compose.yaml: %s=%s needs ${%s} set; give it a default or a test value in composeTestEnv", k, v, m[1])
			return ""
		})
	}
	switch e := s.Environment.(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			if v == nil {
				v = ""
			}
			add(k, fmt.Sprint(v))
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			add(k, v)
		}
	default:
		t.Errorf("compose.yaml: environment of type %T", e)
	}
	return out
}

// args are the binary's arguments: what follows the binary in the
// entrypoint, then the command.
func (s composeService) args(t *testing.T) []string {
	t.Helper()
	var args []string
	if len(s.Entrypoint) > 0 {
		if s.Entrypoint[0] != "/usr/local/bin/flashsale" {
			t.Errorf("compose.yaml: entrypoint %v does not run the binary", s.Entrypoint)
		}
		args = append(args, s.Entrypoint[1:]...)
	}
	switch c := s.Command.(type) {
	case string:
		args = append(args, strings.Fields(c)...)
	case []any:
		for _, a := range c {
			args = append(args, fmt.Sprint(a))
		}
	case nil:
	default:
		t.Errorf("compose.yaml: command of type %T", s.Command)
	}
	return args
}

func TestDeployCompose(t *testing.T) {
	c := readCompose(t)
	vars := binaryEnvVars(t)

	services := c.flashsaleServices()
	for _, want := range []string{"migrate", "serve", "sweep", "relay", "orders", "notify"} {
		if !slices.Contains(services, want) {
			t.Errorf("compose.yaml has no flashsale service %s (flashsale services: %v)", want, services)
		}
	}
	for _, want := range []string{"redis", "kafka", "postgres", "prometheus", "grafana"} {
		if _, ok := c.Services[want]; !ok {
			t.Errorf("compose.yaml has no service %s", want)
		}
	}
	for name, s := range c.Services {
		if s.Image == "" || !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("service %s: image %q is not pinned to a tag", name, s.Image)
		}
		for _, dep := range dependsOn(s.DependsOn) {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") {
				if _, err := os.Stat(filepath.Join(deployDir, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s mounts volume %s, which is not declared", name, src)
			}
		}
	}

	for _, name := range services {
		s := c.Services[name]
		t.Run(name, func(t *testing.T) {
			env := s.env(t)
			for k := range env {
				if binaryNamespace(k) && !vars[k] {
					t.Errorf("environment variable %s is not one the binary reads", k)
				}
			}
			args := s.args(t)
			if len(args) == 0 {
				t.Fatal("no command: name the flashsale subcommand")
			}
			if err := parseWithEnv(t, vars, env, args); err != nil {
				t.Errorf("flashsale %s with the service's environment: %v", strings.Join(args, " "), err)
			}
		})
	}
	if rn := c.Services["relay"].env(t)["FLASHSALE_RELAY_NAME"]; rn == "" {
		t.Error("relay: set FLASHSALE_RELAY_NAME; the container's hostname changes when it is recreated")
	}
	serveEnv, notifyEnv := c.Services["serve"].env(t), c.Services["notify"].env(t)
	if serveEnv["FLASHSALE_ADMIN_TOKEN"] == "" || serveEnv["FLASHSALE_ADMIN_TOKEN"] != notifyEnv["FLASHSALE_ADMIN_TOKEN"] {
		t.Error("serve and notify must share FLASHSALE_ADMIN_TOKEN: webhook secrets derive from it")
	}
}

func dependsOn(v any) []string {
	switch d := v.(type) {
	case []any:
		var out []string
		for _, x := range d {
			out = append(out, fmt.Sprint(x))
		}
		return out
	case map[string]any:
		var out []string
		for k := range d {
			out = append(out, k)
		}
		return out
	}
	return nil
}

// TestDeployDockerfile checks that the image builds the binary with a Go at
// least as new as go.mod asks for, statically (the runtime image has no C
// library), and that the compose services build from it.
func TestDeployDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindStringSubmatch(string(mod))
	got := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\d+)\.(\d+)`).FindStringSubmatch(df)
	if want == nil || got == nil {
		t.Fatalf("go directive %q, ARG GO_VERSION %q", want, got)
	}
	wMaj, _ := strconv.Atoi(want[1])
	wMin, _ := strconv.Atoi(want[2])
	gMaj, _ := strconv.Atoi(got[1])
	gMin, _ := strconv.Atoi(got[2])
	if gMaj < wMaj || gMaj == wMaj && gMin < wMin {
		t.Errorf("Dockerfile builds with Go %s.%s, go.mod needs %s.%s", got[1], got[2], want[1], want[2])
	}
	for _, s := range []string{"CGO_ENABLED=0", "go build", "-o /out/flashsale ./cmd/flashsale",
		"COPY --from=build /out/flashsale /usr/local/bin/flashsale", `ENTRYPOINT ["/usr/local/bin/flashsale"]`} {
		if !strings.Contains(df, s) {
			t.Errorf("Dockerfile lacks %q", s)
		}
	}
	c := readCompose(t)
	for _, name := range c.flashsaleServices() {
		b, ok := c.Services[name].Build.(map[string]any)
		if !ok {
			t.Errorf("service %s: build %v, want context and dockerfile", name, c.Services[name].Build)
			continue
		}
		path := filepath.Join(deployDir, fmt.Sprint(b["context"]), fmt.Sprint(b["dockerfile"]))
		if _, err := os.Stat(path); err != nil {
			t.Errorf("service %s builds from %v", name, err)
		}
		if _, err := os.Stat(filepath.Join(deployDir, fmt.Sprint(b["context"]), "go.mod")); err != nil {
			t.Errorf("service %s: build context is not the module root: %v", name, err)
		}
	}
}

// --- Kubernetes ----------------------------------------------------------------------

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas       *int `yaml:"replicas"`
		Selector       any  `yaml:"selector"`
		MaxUnavailable any  `yaml:"maxUnavailable"`
		MinAvailable   any  `yaml:"minAvailable"`
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas int `yaml:"minReplicas"`
		MaxReplicas int `yaml:"maxReplicas"`
		Template    struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				Containers     []k8sContainer `yaml:"containers"`
				InitContainers []k8sContainer `yaml:"initContainers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
	file string
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			ConfigMapKeyRef *struct{ Name, Key string } `yaml:"configMapKeyRef"`
			SecretKeyRef    *struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]any `yaml:"requests"`
		Limits   map[string]any `yaml:"limits"`
	} `yaml:"resources"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

func readK8s(t *testing.T) []k8sObject {
	t.Helper()
	var objs []k8sObject
	err := filepath.WalkDir(filepath.Join(deployDir, "k8s"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if o.Kind == "" {
				continue
			}
			o.file = path
			objs = append(objs, o)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func isFlashsaleImage(image string) bool {
	return image == "flashsale" || strings.HasPrefix(image, "flashsale:")
}

func TestDeployKubernetes(t *testing.T) {
	objs := readK8s(t)
	vars := binaryEnvVars(t)

	configMaps, secrets := map[string]map[string]string{}, map[string]map[string]string{}
	byKindName := map[string]k8sObject{}
	for _, o := range objs {
		byKindName[o.Kind+"/"+o.Metadata.Name] = o
		switch o.Kind {
		case "ConfigMap":
			configMaps[o.Metadata.Name] = o.Data
		case "Secret":
			s := map[string]string{}
			for k, v := range o.Data {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Errorf("%s: secret key %s is not base64", o.file, k)
				}
				s[k] = string(b)
			}
			for k, v := range o.StringData {
				s[k] = v
			}
			secrets[o.Metadata.Name] = s
		}
	}
	for name, data := range configMaps {
		for k := range data {
			if binaryNamespace(k) && !vars[k] {
				t.Errorf("ConfigMap %s: %s is not a variable the binary reads", name, k)
			}
		}
	}
	for name, data := range secrets {
		for k := range data {
			if binaryNamespace(k) && !vars[k] {
				t.Errorf("Secret %s: %s is not a variable the binary reads", name, k)
			}
		}
	}

	commands := map[string]k8sObject{}
	for _, o := range objs {
		switch o.Kind {
		case "Deployment", "StatefulSet", "Job", "DaemonSet":
		default:
			continue
		}
		pod := o.Spec.Template
		for _, c := range slices.Concat(pod.Spec.Containers, pod.Spec.InitContainers) {
			where := fmt.Sprintf("%s %s container %s", o.Kind, o.Metadata.Name, c.Name)
			env := map[string]string{}
			for _, ef := range c.EnvFrom {
				var data map[string]string
				var ok bool
				var missing string
				switch {
				case ef.ConfigMapRef != nil:
					data, ok = configMaps[ef.ConfigMapRef.Name]
					missing = "ConfigMap " + ef.ConfigMapRef.Name
				case ef.SecretRef != nil:
					data, ok = secrets[ef.SecretRef.Name]
					missing = "Secret " + ef.SecretRef.Name + " (not even an example of it)"
				default:
					continue
				}
				if !ok {
					t.Errorf("%s: no %s", where, missing)
				}
				maps.Copy(env, data)
			}
			for _, e := range c.Env {
				if binaryNamespace(e.Name) && !vars[e.Name] {
					t.Errorf("%s: %s is not a variable the binary reads", where, e.Name)
				}
				switch vf := e.ValueFrom; {
				case vf == nil:
					env[e.Name] = e.Value
				case vf.FieldRef != nil:
					env[e.Name] = "flashsale-pod-0"
				case vf.ConfigMapKeyRef != nil:
					v, ok := configMaps[vf.ConfigMapKeyRef.Name][vf.ConfigMapKeyRef.Key]
					if !ok {
						t.Errorf("%s: %s refers to a missing ConfigMap key %s/%s", where, e.Name, vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
					}
					env[e.Name] = v
				case vf.SecretKeyRef != nil:
					v, ok := secrets[vf.SecretKeyRef.Name][vf.SecretKeyRef.Key]
					if !ok {
						t.Errorf("%s: %s refers to a missing Secret key %s/%s", where, e.Name, vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
					}
					env[e.Name] = v
				}
			}
			if len(c.Resources.Requests) == 0 || len(c.Resources.Limits) == 0 ||
				c.Resources.Requests["cpu"] == nil || c.Resources.Requests["memory"] == nil || c.Resources.Limits["memory"] == nil {
				t.Errorf("%s: set resource requests (cpu, memory) and a memory limit", where)
			}
			if !isFlashsaleImage(c.Image) {
				continue
			}
			if len(c.Command) > 0 {
				t.Errorf("%s: command %v replaces the image's entrypoint (the binary); use args", where, c.Command)
			}
			if len(c.Args) == 0 {
				t.Errorf("%s: no args: name the flashsale subcommand", where)
				continue
			}
			if err := parseWithEnv(t, vars, env, c.Args); err != nil {
				t.Errorf("%s: flashsale %s with the pod's environment: %v", where, strings.Join(c.Args, " "), err)
			}
			commands[c.Args[0]] = o
			if o.Kind == "Job" {
				continue
			}
			// Long-running: probes, and scraping on the port it listens on.
			port := listenPort(t, env["FLASHSALE_HTTP_ADDR"])
			ports := map[string]int{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			for what, pr := range map[string]*k8sProbe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[what]
				if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != want {
					t.Errorf("%s: %s probe should GET %s", where, what, want)
					continue
				}
				if p := probePort(pr.HTTPGet.Port, ports); p != port {
					t.Errorf("%s: %s probe on port %d, the process listens on %d", where, what, p, port)
				}
			}
			ann := pod.Metadata.Annotations
			if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(port) || ann["prometheus.io/path"] != "/metrics" {
				t.Errorf("%s: scrape annotations %v do not match /metrics on port %d", where, ann, port)
			}
			if pod.Metadata.Labels["app.kubernetes.io/component"] != c.Args[0] {
				t.Errorf("%s: label app.kubernetes.io/component should be %s (the PodMonitor names the job after it)", where, c.Args[0])
			}
		}
	}

	for _, cmd := range []string{"migrate", "serve", "sweep", "relay", "orders", "notify"} {
		if _, ok := commands[cmd]; !ok {
			t.Errorf("no workload runs flashsale %s", cmd)
		}
	}
	if o := commands["migrate"]; o.Kind != "Job" {
		t.Errorf("migrate runs in a %s, want a Job", o.Kind)
	}
	serve := commands["serve"]
	if serve.Kind != "Deployment" {
		t.Errorf("serve runs in a %s, want a Deployment", serve.Kind)
	}
	if serve.Spec.Replicas != nil {
		t.Error("serve's Deployment sets replicas: kubectl apply would undo the HPA's scale-out")
	}
	podLabels := serve.Spec.Template.Metadata.Labels
	var hasHPA, hasPDB, hasService bool
	for _, o := range objs {
		switch o.Kind {
		case "HorizontalPodAutoscaler":
			if o.Spec.ScaleTargetRef.Kind == "Deployment" && o.Spec.ScaleTargetRef.Name == serve.Metadata.Name {
				hasHPA = o.Spec.MinReplicas >= 2 && o.Spec.MaxReplicas > o.Spec.MinReplicas
			}
		case "PodDisruptionBudget":
			hasPDB = hasPDB || selects(o.Spec.Selector, podLabels)
		case "Service":
			hasService = hasService || selects(o.Spec.Selector, podLabels)
		}
	}
	if !hasHPA || !hasPDB || !hasService {
		t.Errorf("serve: HPA %v, PodDisruptionBudget %v, Service %v: all three are needed", hasHPA, hasPDB, hasService)
	}

	relay := commands["relay"]
	var relayName bool
	for _, c := range relay.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "FLASHSALE_RELAY_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
				relayName = true
			}
		}
	}
	if relay.Kind != "StatefulSet" || !relayName {
		t.Errorf("relay: a %s, FLASHSALE_RELAY_NAME from the pod name %v; want a StatefulSet (stable pod names) with it", relay.Kind, relayName)
	}

	partitions := 12
	for _, data := range configMaps {
		if v, ok := data["FLASHSALE_KAFKA_PARTITIONS"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("FLASHSALE_KAFKA_PARTITIONS %q", v)
			}
			partitions = n
		}
	}
	for _, cmd := range []string{"orders", "notify"} {
		o := commands[cmd]
		if o.Spec.Replicas == nil {
			t.Errorf("%s: set replicas (1-%d, the topic's partitions)", cmd, partitions)
		} else if n := *o.Spec.Replicas; n < 1 || n > partitions {
			t.Errorf("%s: replicas %d, want 1-%d (the topic's partitions): more would sit idle", cmd, n, partitions)
		}
	}

	// Everything but the example Secret is applied by a kustomization.
	img := checkKustomization(t, filepath.Join(deployDir, "k8s"), "secret.example.yaml")
	checkKustomization(t, filepath.Join(deployDir, "k8s", "monitoring"))
	if lt := checkKustomization(t, filepath.Join(deployDir, "k8s", "loadtest")); lt != img {
		t.Errorf("deploy/k8s/loadtest runs image %q, deploy/k8s %q", lt, img)
	}

	// The PodMonitor gives jobs the names the rules use.
	pm, ok := byKindName["PodMonitor/flashsale"]
	if !ok {
		t.Fatal("no PodMonitor flashsale in deploy/k8s/monitoring")
	}
	raw, err := os.ReadFile(pm.file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"targetLabel: job", "replacement: flashsale-$1", "__meta_kubernetes_pod_label_app_kubernetes_io_component"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("%s: no %q", pm.file, want)
		}
	}
}

// checkKustomization checks that every resource of dir's kustomization
// exists and every manifest in dir (but skip) is a resource, and returns
// the image it sets for flashsale.
func checkKustomization(t *testing.T, dir string, skip ...string) string {
	t.Helper()
	var k struct {
		Resources []string `yaml:"resources"`
		Images    []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		} `yaml:"images"`
	}
	decode(t, filepath.Join(dir, "kustomization.yaml"), &k)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || filepath.Ext(name) != ".yaml" || name == "kustomization.yaml" || slices.Contains(skip, name) {
			continue
		}
		if !slices.Contains(k.Resources, name) {
			t.Errorf("%s/kustomization.yaml does not apply %s", dir, name)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
			t.Errorf("%s/kustomization.yaml: %v", dir, err)
		}
	}
	var image string
	for _, img := range k.Images {
		if img.Name != "flashsale" {
			t.Errorf("%s/kustomization.yaml rewrites image %q; the manifests use flashsale", dir, img.Name)
		}
		image = img.NewName + ":" + img.NewTag
	}
	return image
}

// selects reports whether a selector (a plain map, or matchLabels) matches
// labels.
func selects(selector any, labels map[string]string) bool {
	m, ok := selector.(map[string]any)
	if !ok || len(m) == 0 {
		return false
	}
	if ml, ok := m["matchLabels"].(map[string]any); ok {
		m = ml
	}
	for k, v := range m {
		if labels[k] != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

func probePort(p any, named map[string]int) int {
	switch v := p.(type) {
	case int:
		return v
	case string:
		return named[v]
	}
	return 0
}

// --- helpers -------------------------------------------------------------------------

var (
	envInUsage  = regexp.MustCompile(`\(\$([A-Z0-9_]+)\)`)
	commandLine = regexp.MustCompile(`(?m)^  ([a-z][a-z-]*) {2,}\S`)
)

// binaryCommands lists the subcommands the usage text names.
func binaryCommands(t *testing.T) []string {
	t.Helper()
	var cmds []string
	for _, m := range commandLine.FindAllStringSubmatch(usage, -1) {
		if m[1] != "help" {
			cmds = append(cmds, m[1])
		}
	}
	if len(cmds) < 10 {
		t.Fatalf("found only commands %v in the usage text", cmds)
	}
	return cmds
}

// binaryEnvVars returns the environment variables the binary reads: every
// flag of every command names its variable in its usage, "($NAME)", which
// "flashsale COMMAND -h" prints.
func binaryEnvVars(t *testing.T) map[string]bool {
	t.Helper()
	vars := map[string]bool{}
	for _, cmd := range binaryCommands(t) {
		var out bytes.Buffer
		m := NewMain()
		m.Stdout, m.Stderr = &out, &out
		if err := m.ParseFlags([]string{cmd, "-h"}); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("flashsale %s -h: %v\n%s", cmd, err, out.String())
		}
		for _, m := range envInUsage.FindAllStringSubmatch(out.String(), -1) {
			vars[m[1]] = true
		}
	}
	for _, want := range []string{"REDIS_URL", "REDIS_CLUSTER_ADDRS", "DATABASE_URL", "KAFKA_BROKERS", "FLASHSALE_ADMIN_TOKEN", "FLASHSALE_HTTP_ADDR", "FLASHSALE_RELAY_NAME"} {
		if !vars[want] {
			t.Fatalf("the flags' usages do not name $%s: %v", want, vars)
		}
	}
	return vars
}

// binaryNamespace reports whether an environment variable is in a name
// space the binary reads from, so that one it does not read is a mistake.
func binaryNamespace(name string) bool {
	return strings.HasPrefix(name, "FLASHSALE_") || strings.HasPrefix(name, "REDIS_") ||
		strings.HasPrefix(name, "KAFKA_") || name == "DATABASE_URL"
}

// parseWithEnv runs Main.ParseFlags(args) with exactly env among the
// binary's variables, as the container would.
func parseWithEnv(t *testing.T, vars map[string]bool, env map[string]string, args []string) error {
	t.Helper()
	for name := range vars {
		t.Setenv(name, "") // restored when the test ends
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	m := NewMain()
	m.Stdout, m.Stderr = io.Discard, io.Discard
	if err := m.ParseFlags(args); err != nil {
		return err
	}
	if m.Command != args[0] {
		return fmt.Errorf("parsed command %q", m.Command)
	}
	// The URLs are parsed only when a command connects: parse them here
	// the way openRedis and persist.Open do.
	if _, err := redis.ParseURL(m.Config.RedisURL); err != nil && m.Config.RedisClusterAddrs == "" {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	for _, a := range splitList(m.Config.RedisClusterAddrs) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("REDIS_CLUSTER_ADDRS: %w", err)
		}
	}
	for _, b := range splitList(m.Config.KafkaBrokers) {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("KAFKA_BROKERS: %w", err)
		}
	}
	if _, err := pgxpool.ParseConfig(m.Config.DatabaseURL); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	return nil
}

// listenPort is the port of an -http-addr value (the default when empty).
func listenPort(t *testing.T, addr string) int {
	t.Helper()
	if addr == "" {
		addr = DefaultConfig().HTTPAddr
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("FLASHSALE_HTTP_ADDR %q: %v", addr, err)
		return 0
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Errorf("FLASHSALE_HTTP_ADDR %q: %v", addr, err)
	}
	return n
}

func decodeAll(t *testing.T, path string) []any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []any
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var v any
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Errorf("%s: %v", path, err)
			break
		}
		if v != nil {
			docs = append(docs, v)
		}
	}
	return docs
}

func decode(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// decodeStrict decodes and fails on fields v does not have (a misspelt
// "annotations" would otherwise be silently dropped).
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
