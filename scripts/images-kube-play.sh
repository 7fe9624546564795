#!/usr/bin/env bash
# `make images-kube-play`: the rendered chart (helm template, default values) run by
# `podman kube play` on this machine's images, then taken down again. Prints, per Deployment,
# whether its container answers grpc health SERVING, its uid and whether / is read-only.
# What podman 4.3 (Debian bookworm) needs changed in the rendered YAML, and why:
#   - secret volumes get `optional: false` (podman 4.3 crashes on a secret volume without it);
#   - containerPorts are dropped and the Services' names become hostAliases of 127.0.0.1 (with
#     --network host podman refuses port mappings, and there is no cluster DNS);
#   - database.existingSecret="" (SQLite read models in the pod's /tmp) and nats.url names a
#     nats-server started here on a free port.
# The Secrets are podman secrets with made-up values: an env Secret as a flat JSON map of
# base64 values, the internal identity (a volume) as a Secret object whose `data` holds the PEM
# files as they are (podman 4.3 writes `data` to the files without decoding it).
# Needs `make images` first; uses the chart's ports 50050-50054, 9101-9105 and 8080 on the host.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="$ROOT/scripts/containers.conf"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || { echo "no .venv: run make proto first" >&2; exit 1; }
HELM="$(bash "$ROOT/scripts/chart-check.sh" fetch-helm)"
WORK="$(mktemp -d)"
NATS_PID=""

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

cleanup() {
  podman kube down "$WORK/chart.yaml" >/dev/null 2>&1 || true
  podman volume rm --force careops-internal-identity careops-policies >/dev/null 2>&1 || true
  for secret in $(cat "$WORK/secrets" 2>/dev/null); do
    podman secret rm "$secret" >/dev/null 2>&1 || true
  done
  [[ -n "$NATS_PID" ]] && kill "$NATS_PID" 2>/dev/null && wait "$NATS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

port="$("$PY" -c 'from careops_eventstore.nats_embedded import free_port; print(free_port())')"
nats="$("$PY" -c 'from careops_eventstore.nats_embedded import nats_server_binary as b; print(b())')"
"$nats" -js -a 127.0.0.1 -p "$port" -sd "$WORK/jetstream" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
log "nats-server on 127.0.0.1:$port; helm template"
"$HELM" template careops "$ROOT/charts/careops" --namespace careops \
  --set database.existingSecret= --set nats.url="nats://127.0.0.1:$port" >"$WORK/rendered.yaml"

# Patch the rendered chart for podman 4.3 and make the Secrets it references.
"$PY" - "$WORK" <<'PY'
import base64, json, os, subprocess, sys
from pathlib import Path
import yaml

work = Path(sys.argv[1])
docs = [d for d in yaml.safe_load_all((work / "rendered.yaml").read_text()) if d]
deployments = [d for d in docs if d["kind"] == "Deployment"]
names = [d["metadata"]["name"] for d in deployments]
env_secrets: dict[str, dict[str, str]] = {}
volume_secrets: set[str] = set()
for doc in deployments:
    spec = doc["spec"]["template"]["spec"]
    for volume in spec["volumes"]:
        if "secret" in volume:
            volume["secret"].setdefault("optional", False)
            volume_secrets.add(volume["secret"]["secretName"])
    for container in spec["containers"]:
        container.pop("ports", None)
        for item in container["env"]:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                value = base64.b64encode(os.urandom(32)).decode()
                env_secrets.setdefault(ref["name"], {})[ref["key"]] = base64.b64encode(
                    value.encode()
                ).decode()
    spec["hostAliases"] = [{"ip": "127.0.0.1", "hostnames": names}]
(work / "chart.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))

keys = work / "keys"
keys.mkdir()
openssl = [
    ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ["-out", str(keys / "signing-key.pem")],
]
subprocess.run(["openssl", *openssl[0], *openssl[1]], check=True, capture_output=True)
subprocess.run(
    ["openssl", "pkey", "-in", str(keys / "signing-key.pem"), "-pubout", "-out",
     str(keys / "verify-key.pem")], check=True, capture_output=True,
)
files = {name: (keys / name).read_text() for name in ("signing-key.pem", "verify-key.pem")}
created = []
for name in sorted(env_secrets.keys() | volume_secrets):
    if name in volume_secrets:
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": files}
    else:
        body = env_secrets[name]
    path = work / f"secret-{name}.json"
    path.write_text(json.dumps(body))
    subprocess.run(["podman", "secret", "rm", name], capture_output=True)
    subprocess.run(["podman", "secret", "create", name, str(path)], check=True, capture_output=True)
    created.append(name)
(work / "secrets").write_text("\n".join(created))
print(f"  {len(deployments)} Deployments; secrets: {', '.join(created)}", file=sys.stderr)
print("  kube play ignores: " + ", ".join(sorted({d["kind"] for d in docs} - {"Deployment", "ConfigMap"})), file=sys.stderr)
PY

log "podman kube play --network host"
start=$SECONDS
podman kube play --network host "$WORK/chart.yaml" >/dev/null

# Health, uid and a read-only / of each Deployment's container.
"$PY" - "$WORK/chart.yaml" <<'PY'
import subprocess, sys, time
import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Deployment"]

def serving(port: int) -> bool:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False

failed = 0
for doc in docs:
    name = doc["metadata"]["name"]
    container = doc["spec"]["template"]["spec"]["containers"][0]
    port = int(next(e["value"] for e in container["env"] if e["name"].endswith("_GRPC_PORT")))
    podman_name = f"{name}-pod-0-{container['name']}"
    deadline = time.monotonic() + 90
    ok = serving(port)
    while not ok and time.monotonic() < deadline:
        time.sleep(0.5)
        ok = serving(port)
    uid = subprocess.run(["podman", "exec", podman_name, "id", "-u"], capture_output=True, text=True).stdout.strip()
    write = subprocess.run(["podman", "exec", "--user=0", podman_name, "touch", "/probe"], capture_output=True, text=True)
    read_only = write.returncode != 0 and "Read-only file system" in write.stderr
    failed += not (ok and uid == "10001" and read_only)
    print(f"  {name:28} :{port} health {'SERVING' if ok else 'NOT SERVING'}, uid {uid}, / read-only: {read_only}", file=sys.stderr)
    if not ok:
        logs = subprocess.run(["podman", "logs", "--tail=5", podman_name], capture_output=True, text=True)
        print("    " + (logs.stdout + logs.stderr).strip().replace("\n", "\n    "), file=sys.stderr)
sys.exit(1 if failed else 0)
PY
log "kube play: all Deployments SERVING in $((SECONDS - start))s"
