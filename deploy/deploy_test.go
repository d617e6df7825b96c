package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/junctionhq/junction/config"
	"github.com/junctionhq/junction/router"
	_ "github.com/junctionhq/junction/sinks/all"
	_ "github.com/junctionhq/junction/sources/all"
)

// stopWithin is how long a replica may take to stop after SIGTERM (SPEC:
// "A replica stops within 20 s of SIGTERM"); grace periods must exceed it.
const stopWithin = 20

// docs decodes every YAML document of a file.
func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(out)+1, err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
}

// get walks m along keys (map keys, or list indexes as ints).
func get(t *testing.T, m any, keys ...any) any {
	t.Helper()
	cur := m
	for i, k := range keys {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[k.(string)]
		case []any:
			cur = c[k.(int)]
		default:
			t.Fatalf("%v: not a mapping or list at %v", keys, keys[:i])
		}
		if cur == nil {
			t.Fatalf("%v: missing", keys[:i+1])
		}
	}
	return cur
}

func byKind(t *testing.T, all []map[string]any, kind string) []map[string]any {
	var out []map[string]any
	for _, d := range all {
		if d["kind"] == kind {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s", kind)
	}
	return out
}

// compile checks a Junction config as `junction validate` does, with every
// ${VAR} that env names (and only those) set.
func compile(t *testing.T, name string, text string, env map[string]bool) {
	t.Helper()
	cfg, err := config.Parse(name, []byte(text), func(k string) (string, bool) {
		if !env[k] {
			return "", false
		}
		if strings.HasSuffix(k, "_URL") {
			return "https://example.com/x", true
		}
		return "x", true
	})
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	if _, err := router.Compile(cfg); err != nil {
		t.Fatalf("router.Compile: %v", err)
	}
	// serve refuses an admin API beyond loopback without admin.auth.
	if err := cfg.CheckExposure(); err != nil {
		t.Errorf("serve would refuse it: %v", err)
	}
	if cfg.Journal.URL == "" || cfg.Journal.Replicas != 3 {
		t.Errorf("%s: journal url %q replicas %d, want a cluster with 3 replicas", name, cfg.Journal.URL, cfg.Journal.Replicas)
	}
}

func TestKubernetes(t *testing.T) {
	all := docs(t, "kubernetes/junction.yaml")
	dep := byKind(t, all, "Deployment")[0]
	pod := get(t, dep, "spec", "template", "spec")
	c := get(t, pod, "containers", 0)
	if p := get(t, c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readiness probe on %v, want /readyz", p)
	}
	if p := get(t, c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("liveness probe on %v, want /healthz", p)
	}
	ports := map[any]any{}
	for _, p := range get(t, c, "ports").([]any) {
		ports[get(t, p, "name")] = get(t, p, "containerPort")
	}
	for _, probe := range []string{"readinessProbe", "livenessProbe"} {
		if port := get(t, c, probe, "httpGet", "port"); ports[port] != 9090 {
			t.Errorf("%s on port %v, want the admin port 9090 (ports %v)", probe, port, ports)
		}
	}
	if g, _ := get(t, pod, "terminationGracePeriodSeconds").(int); g <= stopWithin {
		t.Errorf("terminationGracePeriodSeconds %d, want above the %d s a replica takes to drain and stop", g, stopWithin)
	}
	labels := get(t, dep, "spec", "template", "metadata", "labels").(map[string]any)
	matches := func(sel map[string]any) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if sel := get(t, dep, "spec", "selector", "matchLabels").(map[string]any); !matches(sel) {
		t.Errorf("Deployment selector %v does not match its pods' labels %v", sel, labels)
	}
	pdb := byKind(t, all, "PodDisruptionBudget")[0]
	if sel := get(t, pdb, "spec", "selector", "matchLabels").(map[string]any); !matches(sel) {
		t.Errorf("PodDisruptionBudget selector %v does not match the Deployment's pods %v", sel, labels)
	}
	if n, _ := get(t, dep, "spec", "replicas").(int); n < 2 {
		t.Errorf("%d replicas, want at least 2", n)
	}
	for _, svc := range byKind(t, all, "Service") {
		if sel := get(t, svc, "spec", "selector").(map[string]any); !matches(sel) {
			t.Errorf("Service %v selector %v does not match the pods", get(t, svc, "metadata", "name"), sel)
		}
	}

	// The config: from the ConfigMap the pods mount, equal to
	// deploy/junction.yaml, valid with the environment the pods get, and
	// secrets only from Secrets.
	var cmName string
	for _, v := range get(t, pod, "volumes").([]any) {
		if cm, ok := v.(map[string]any)["configMap"]; ok {
			cmName = get(t, cm, "name").(string)
		}
	}
	var cm map[string]any
	for _, d := range byKind(t, all, "ConfigMap") {
		if get(t, d, "metadata", "name") == cmName {
			cm = d
		}
	}
	if cm == nil {
		t.Fatalf("the pods mount ConfigMap %q, which is not defined", cmName)
	}
	text := get(t, cm, "data", "junction.yaml").(string)
	file, err := os.ReadFile("junction.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if text != string(file) {
		t.Error("the ConfigMap's junction.yaml differs from deploy/junction.yaml")
	}
	env := map[string]bool{}
	for _, e := range get(t, c, "env").([]any) {
		name := get(t, e, "name").(string)
		env[name] = true
		if strings.Contains(name, "TOKEN") || strings.Contains(name, "PASSWORD") {
			if _, ok := e.(map[string]any)["valueFrom"]; !ok {
				t.Errorf("env %s is set inline, want it from a Secret", name)
			}
		}
	}
	compile(t, "ConfigMap junction-config", text, env)
	if url := os.Expand("${JOURNAL_URL}", func(string) string {
		for _, e := range get(t, c, "env").([]any) {
			if get(t, e, "name") == "JOURNAL_URL" {
				return get(t, e, "value").(string)
			}
		}
		return ""
	}); strings.Count(url, "nats://") != 3 {
		t.Errorf("JOURNAL_URL %q, want the 3 NATS nodes", url)
	}
}

func TestNATSValues(t *testing.T) {
	v := docs(t, "nats-values.yaml")[0]
	if get(t, v, "config", "cluster", "enabled") != true || get(t, v, "config", "cluster", "replicas") != 3 {
		t.Error("want a 3-node cluster (config.cluster.enabled, replicas: 3)")
	}
	if get(t, v, "config", "jetstream", "enabled") != true || get(t, v, "config", "jetstream", "fileStore", "enabled") != true {
		t.Error("want JetStream with a file store")
	}
}

func TestCompose(t *testing.T) {
	c := docs(t, "compose.yaml")[0]
	services := get(t, c, "services").(map[string]any)
	var nats, replicas []string
	for name := range services {
		switch {
		case strings.HasPrefix(name, "nats-"):
			nats = append(nats, name)
		case strings.HasPrefix(name, "junction-"):
			replicas = append(replicas, name)
		}
	}
	if len(nats) != 3 || len(replicas) != 2 {
		t.Fatalf("services %v: want 3 NATS nodes and 2 replicas", reflect.ValueOf(services).MapKeys())
	}
	for _, n := range nats {
		args := strings.Join(toStrings(get(t, services[n], "command")), " ")
		for _, want := range []string{"-js", "--cluster_name junction", "--routes"} {
			if !strings.Contains(args, want) {
				t.Errorf("%s: command %q lacks %s", n, args, want)
			}
		}
	}
	for _, r := range replicas {
		s := services[r]
		env := get(t, s, "environment").(map[string]any)
		url := env["JOURNAL_URL"].(string)
		for _, n := range nats {
			if !strings.Contains(url, "nats://"+n+":4222") {
				t.Errorf("%s: JOURNAL_URL %q lacks %s", r, url, n)
			}
		}
		if g := get(t, s, "stop_grace_period"); g != "30s" {
			t.Errorf("%s: stop_grace_period %v, want 30s (above %d s)", r, g, stopWithin)
		}
		mount := toStrings(get(t, s, "volumes"))[0]
		src := strings.SplitN(mount, ":", 2)[0]
		data, err := os.ReadFile(filepath.Clean(src))
		if err != nil {
			t.Fatalf("%s: config %s: %v", r, src, err)
		}
		set := map[string]bool{}
		for k := range env {
			set[k] = true
		}
		compile(t, src, string(data), set)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
