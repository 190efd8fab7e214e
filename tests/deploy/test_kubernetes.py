"""The Kubernetes manifests in deploy/kubernetes/: valid against the API's schemas, and consistent with
the daemon they run.

* Every manifest passes ``kubernetes-validate --strict`` (the Kubernetes OpenAPI schemas, bundled in
  the package: no cluster, no download), and a broken one fails it.
* The ConfigMap's ``genretag.toml`` passes ``check-config``; its ``[fleet] shards`` equals the
  StatefulSet's replicas; the container's args parse with our CLI; the shard index comes from the
  pod's ordinal; the probes and the Service name the ports the config binds.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))
KUBERNETES_VERSION = "1.30.0"  # the oldest version still supported upstream when this was written


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "deploy" / "kubernetes" / name).read_text())


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_manifest_passes_the_kubernetes_schema(path: Path) -> None:
    result = validate(path)
    assert result.returncode == 0 and "passed" in result.stdout, result.stdout + result.stderr


def test_the_schema_check_fails_a_broken_manifest(tmp_path: Path) -> None:
    broken = load("statefulset.yaml")
    broken["spec"]["replicas"] = "three"
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy2"] = "Always"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = validate(path)
    assert result.returncode != 0, result.stdout + result.stderr


def test_the_fleet_config_fits_the_statefulset(tmp_path: Path) -> None:
    from genretag.cli.main import cli

    text = load("configmap.yaml")["data"]["genretag.toml"]
    config = tmp_path / "genretag.toml"
    config.write_text(text)
    check = subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    parsed = tomllib.loads(text)
    statefulset = load("statefulset.yaml")
    assert parsed["fleet"]["shards"] == statefulset["spec"]["replicas"]
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command, *args = container["args"]
    config_path = args[args.index("--config") + 1]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert Path(config_path).parent == Path(mount["mountPath"])
    cli.commands[command].make_context(command, list(args))  # raises on a flag serve does not know
    env = {e["name"]: e for e in container["env"]}
    assert env["GENRETAG_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    zmq_source = next(s["spec"] for s in parsed["source"] if s["spec"].startswith("zmq:"))
    assert zmq_source.endswith(f":{ports['audio']}")
    assert parsed["publish"]["address"].endswith(f":{ports['events']}")
    assert parsed["metrics"]["address"].endswith(f":{ports['metrics']}")
    service = load("service.yaml")
    assert service["spec"]["clusterIP"] == "None" and statefulset["spec"]["serviceName"] == "genretag"
    assert {p["targetPort"] for p in service["spec"]["ports"]} == set(ports)
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
