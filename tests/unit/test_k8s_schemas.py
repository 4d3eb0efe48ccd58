"""The k8s/ manifests against the Kubernetes API schemas (kubernetes-validate, which ships them: no network),
strictly (an unknown field is an error); the migration Job ordered before the Deployment; the HPA and the
NetworkPolicies aimed at the right pods and ports."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.test_deploy_manifests import KUSTOMIZATION, load_manifests

# The oldest Kubernetes still supported by its vendors that has every API used here, and the newest known.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
WAVE = "argocd.argoproj.io/sync-wave"


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{name}#{i}", doc) for name, docs in load_manifests().items() for i, doc in enumerate(docs)]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid(version: str) -> None:
    checked = set()
    for where, doc in documents():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{where} ({doc['kind']}) is not a valid Kubernetes {version} object: "
                                 f"{exc.message} at {list(exc.path)}") from None
        checked.add(doc["kind"])
    assert {"Deployment", "Job", "HorizontalPodAutoscaler", "NetworkPolicy", "Service"} <= checked


def test_the_validator_refuses_what_kubernetes_would() -> None:
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    broken = copy.deepcopy(hpa)
    broken["spec"]["minReplicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)
    unknown = copy.deepcopy(hpa)
    unknown["spec"]["minimumReplicas"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSIONS[-1], strict=True)


def wave(doc: dict[str, Any]) -> int:
    return int(doc["metadata"].get("annotations", {}).get(WAVE, "0"))


def test_the_migration_job_runs_before_the_deployment() -> None:
    (job,), (deployment,) = by_kind("Job"), by_kind("Deployment")
    annotations = job["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/hook"] == "Sync"  # waited for, and recreated on each sync
    assert annotations["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    assert wave(job) < wave(deployment)
    # What the Job reads exists before it runs; everything else comes after it.
    for kind in ("ConfigMap", "Secret"):
        assert all(wave(doc) < wave(job) for doc in by_kind(kind)), kind
    later = [doc for _, doc in documents() if doc["kind"] not in {"ConfigMap", "Secret", "Job"}]
    assert all(wave(doc) > wave(job) for doc in later)
    # kubectl apply -k: the same order (kustomize keeps it with sortOptions fifo).
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["sortOptions"] == {"order": "fifo"}
    resources = kustomization["resources"]
    assert resources.index("migration-job.yaml") < resources.index("deployment.yaml")
    assert resources.index("configmap.yaml") < resources.index("migration-job.yaml")


def selects(selector: dict[str, Any], doc: dict[str, Any]) -> bool:
    labels = doc["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_network_policies_cover_the_pods_and_their_ports() -> None:
    (job,), (deployment,) = by_kind("Job"), by_kind("Deployment")
    policies = {p["metadata"]["name"]: p for p in by_kind("NetworkPolicy")}
    server, migrate = policies["tally-server"], policies["tally-migrate"]
    assert selects(server["spec"]["podSelector"], deployment) and not selects(server["spec"]["podSelector"], job)
    assert selects(migrate["spec"]["podSelector"], job) and not selects(migrate["spec"]["podSelector"], deployment)
    ports = {p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    allowed_in = {p["port"] for rule in server["spec"]["ingress"] for p in rule["ports"]}
    assert allowed_in == {ports["grpc"], ports["metrics"]}
    allowed_out = {p["port"] for rule in server["spec"]["egress"] for p in rule["ports"]}
    assert {53, 5432} <= allowed_out
    assert migrate["spec"]["ingress"] == [] and set(migrate["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_metrics_port_matches_the_setting() -> None:
    (deployment,), (configmap,) = by_kind("Deployment"), by_kind("ConfigMap")
    ports = {p["name"]: p["containerPort"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert configmap["data"]["TALLY_METRICS_ADDRESS"].rpartition(":")[2] == str(ports["metrics"])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
