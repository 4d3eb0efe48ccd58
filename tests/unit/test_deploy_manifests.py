"""Static checks of the container image definition and the Kubernetes manifests.

Docker and Kubernetes are not available where the unit tests run, so these tests
parse ``Dockerfile``, ``.dockerignore`` and ``k8s/*.yaml`` and check the properties
that keep them consistent with each other and with the service:

* the image runs ``tally serve`` as a fixed, non-root numeric UID that the pods
  also enforce;
* the gRPC port is the same everywhere (EXPOSE, listen address, container port,
  probes, Service);
* the database URLs only ever reach the pods through a Secret: the server's (the
  service role, which owns nothing) to the Deployment, the schema owner's only
  to the migration Job, and the server never migrates;
* the kustomization lists exactly the manifests that exist.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from tally.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
K8S_DIR = REPO_ROOT / "k8s"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"

DB_URL_VAR = "TALLY_DATABASE_URL"
MIGRATE_URL_VAR = "TALLY_MIGRATE_DATABASE_URL"
SERVICE_ROLE_VAR = "TALLY_SERVICE_ROLE"
AUTO_MIGRATE_VAR = "TALLY_AUTO_MIGRATE"
GRACE_VAR = "TALLY_SHUTDOWN_GRACE_S"
LISTEN_VAR = "TALLY_LISTEN_ADDRESS"
EXPECTED_BASE_IMAGE = "python:3.11-slim"


# --------------------------------------------------------------------------- #
# Dockerfile parsing
# --------------------------------------------------------------------------- #


@dataclass
class Instruction:
    keyword: str  # upper-cased, e.g. "RUN"
    args: str  # everything after the keyword, continuations joined
    lineno: int  # line of the keyword in the file (1-based)


@dataclass
class Stage:
    index: int
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions.

    Follows the Docker rules that matter here: a line whose first non-blank
    character is ``#`` is a comment (also inside a continuation), a trailing
    backslash continues the instruction on the next line, and blank lines
    inside a continuation are skipped. Only the default escape character is
    supported.
    """
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not parts):
            continue
        if not stripped:  # blank line inside a continuation
            continue
        if not parts:
            start = lineno
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        line = " ".join(p for p in parts if p)
        parts = []
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    if parts:
        raise ValueError(f"Dockerfile ends inside a line continuation started on line {start}")
    return instructions


def split_stages(instructions: list[Instruction]) -> list[Stage]:
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(len(stages), words[0], name))
        elif stages:
            stages[-1].instructions.append(ins)
        elif ins.keyword not in {"ARG"}:
            raise ValueError(f"line {ins.lineno}: {ins.keyword} before the first FROM")
    return stages


def exec_form(args: str) -> list[str]:
    """Argv of a RUN/CMD/ENTRYPOINT argument: JSON (exec) form or shell form."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
        return value
    return ["/bin/sh", "-c", args]


def parse_env(args: str) -> dict[str, str]:
    """ENV key=value [key=value ...] (or the legacy ``ENV key value``)."""
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(tok.split("=", 1) for tok in tokens)


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    """Leading ``--flag=value`` options of COPY/ADD/HEALTHCHECK, and the rest."""
    tokens = shlex.split(args)
    flags: dict[str, str] = {}
    while tokens and tokens[0].startswith("--"):
        key, _, value = tokens.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, tokens


def stage_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage.all("ENV"):
        env.update(parse_env(ins.args))
    return env


def resolve(workdir: str, path: str) -> str:
    p = PurePosixPath(path)
    full = p if p.is_absolute() else PurePosixPath(workdir) / p
    parts: list[str] = []
    for part in full.parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def shell_commands(script: str) -> list[list[str]]:
    """Split a shell-form RUN line into simple commands (on &&, ||, ;, |)."""
    commands = []
    for segment in re.split(r"&&|\|\||;|\|", script):
        try:
            tokens = shlex.split(segment)
        except ValueError:
            continue
        if tokens:
            commands.append(tokens)
    return commands


_PIP_OPTS_WITH_VALUE = {
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target",
    "--prefix", "--root", "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
    "--platform", "--python-version", "--implementation", "--abi", "--src", "--progress-bar",
    "--report", "--config-settings", "-C",
}  # fmt: skip


def pip_install_calls(script: str) -> list[list[str]]:
    """Argument lists (after ``install``) of every pip install in a shell script."""
    calls = []
    for tokens in shell_commands(script):
        for i, tok in enumerate(tokens[:-1]):
            if PurePosixPath(tok).name.startswith("pip") and tokens[i + 1] == "install":
                calls.append(tokens[i + 2 :])
                break
    return calls


def pip_positionals(install_args: list[str]) -> list[str]:
    positionals, skip = [], False
    for tok in install_args:
        if skip:
            skip = False
        elif tok in _PIP_OPTS_WITH_VALUE:
            skip = True
        elif not tok.startswith("-"):
            positionals.append(tok)
    return positionals


# --------------------------------------------------------------------------- #
# Kubernetes helpers
# --------------------------------------------------------------------------- #


def load_manifests() -> dict[str, list[dict[str, Any]]]:
    docs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(K8S_DIR.glob("*.y*ml")):
        if path.name == KUSTOMIZATION.name:
            continue
        loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        docs[path.name] = loaded
    return docs


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


_QUANTITY_SUFFIX = {
    "m": Decimal("0.001"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
}  # fmt: skip


def quantity(value: Any) -> Decimal:
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)", str(value))
    assert m and m.group(2) in _QUANTITY_SUFFIX, f"not a Kubernetes quantity: {value!r}"
    return Decimal(m.group(1)) * _QUANTITY_SUFFIX[m.group(2)]


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


# --------------------------------------------------------------------------- #
# Fixtures
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return split_stages(parse_dockerfile(DOCKERFILE.read_text()))


@pytest.fixture(scope="module")
def final_stage(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    return load_manifests()


def _one(manifests: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, Any]:
    found = [d for docs in manifests.values() for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def deployment(manifests) -> dict[str, Any]:
    return _one(manifests, "Deployment")


@pytest.fixture(scope="module")
def job(manifests) -> dict[str, Any]:
    return _one(manifests, "Job")


@pytest.fixture(scope="module")
def service(manifests) -> dict[str, Any]:
    return _one(manifests, "Service")


@pytest.fixture(scope="module")
def configmap(manifests) -> dict[str, Any]:
    return _one(manifests, "ConfigMap")


@pytest.fixture(scope="module")
def secret(manifests) -> dict[str, Any]:
    return _one(manifests, "Secret")


@pytest.fixture(scope="module")
def hpa(manifests) -> dict[str, Any]:
    return _one(manifests, "HorizontalPodAutoscaler")


@pytest.fixture(scope="module")
def pdb(manifests) -> dict[str, Any]:
    return _one(manifests, "PodDisruptionBudget")


@pytest.fixture(scope="module")
def workloads(deployment, job) -> list[dict[str, Any]]:
    return [deployment, job]


@pytest.fixture(scope="module")
def server_container(deployment) -> dict[str, Any]:
    containers = pod_spec(deployment)["containers"]
    assert len(containers) == 1, "the Deployment should run exactly one container"
    return containers[0]


def image_argv(final_stage: Stage) -> tuple[list[str], list[str]]:
    entrypoint = final_stage.last("ENTRYPOINT")
    cmd = final_stage.last("CMD")
    return (exec_form(entrypoint.args) if entrypoint else [], exec_form(cmd.args) if cmd else [])


def container_argv(container: dict[str, Any], final_stage: Stage) -> list[str]:
    """The process a container runs, with Kubernetes' command/args override rules."""
    entrypoint, cmd = image_argv(final_stage)
    if "command" in container:
        return list(container["command"]) + list(container.get("args", []))
    if "args" in container:
        return entrypoint + list(container["args"])
    return entrypoint + cmd


# --------------------------------------------------------------------------- #
# Parser self-tests (so that the checks below cannot pass vacuously)
# --------------------------------------------------------------------------- #


def test_dockerfile_parser_handles_continuations_and_comments():
    text = (
        "# syntax=docker/dockerfile:1\n"
        "ARG X=1\n"
        "FROM python:3.11-slim AS build\n"
        "RUN a \\\n"
        "    # a comment inside a continuation\n"
        "\n"
        " && b \\\n"
        " && c\n"
        'CMD ["tally", "serve"]\n'
        "FROM python:3.11-slim\n"
        "USER 10001:10001\n"
    )
    ins = parse_dockerfile(text)
    assert [i.keyword for i in ins] == ["ARG", "FROM", "RUN", "CMD", "FROM", "USER"]
    assert ins[2].args == "a && b && c"
    assert ins[2].lineno == 4
    stages = split_stages(ins)
    assert [(s.base, s.name) for s in stages] == [("python:3.11-slim", "build"), ("python:3.11-slim", None)]
    assert exec_form(stages[0].last("CMD").args) == ["tally", "serve"]
    assert exec_form("tally serve") == ["/bin/sh", "-c", "tally serve"]
    with pytest.raises(ValueError):
        parse_dockerfile("FROM x\nRUN a \\\n")


def test_pip_install_parsing():
    script = "pip install --upgrade pip && python -m pip install --no-cache-dir -c c.txt /src[pg]; echo ok"
    calls = pip_install_calls(script)
    assert len(calls) == 2
    assert pip_positionals(calls[0]) == ["pip"]
    assert pip_positionals(calls[1]) == ["/src[pg]"]


# --------------------------------------------------------------------------- #
# Dockerfile
# --------------------------------------------------------------------------- #


def test_dockerfile_is_multi_stage_on_python_slim(stages):
    assert len(stages) >= 2, "expected a multi-stage build (build stage + runtime stage)"
    for stage in stages:
        assert stage.base == EXPECTED_BASE_IMAGE, f"stage {stage.index} is based on {stage.base}"


def _venv_dirs(stages: list[Stage]) -> set[str]:
    dirs = set()
    for stage in stages[:-1]:
        for ins in stage.all("RUN"):
            argv = exec_form(ins.args)
            script = argv[2] if argv[:2] == ["/bin/sh", "-c"] else shlex.join(argv)
            for tokens in shell_commands(script):
                if "venv" in tokens and tokens.index("venv") > 0 and tokens[tokens.index("venv") - 1] == "-m":
                    dirs.add(tokens[-1].rstrip("/"))
    return dirs


def test_final_stage_copies_the_venv_from_the_build_stage(stages, final_stage):
    venvs = _venv_dirs(stages)
    assert venvs, "the build stage should create a virtualenv (python -m venv DIR)"
    build_refs = {s.name for s in stages[:-1]} | {str(s.index) for s in stages[:-1]}
    copied = []
    for ins in final_stage.all("COPY"):
        flags, paths = split_flags(ins.args)
        if flags.get("from") in build_refs:
            src, dest = paths[:-1], paths[-1]
            copied += [(s.rstrip("/"), dest.rstrip("/")) for s in src]
    matching = [(s, d) for s, d in copied if s in venvs]
    assert matching, f"final stage does not COPY --from the build stage any of {venvs}"
    for src, dest in matching:
        # Console-script shebangs are absolute: the venv must keep its path.
        assert src == dest, f"venv copied from {src} to {dest}; scripts would have stale shebangs"
        path = stage_env(final_stage).get("PATH", "")
        assert path.split(":")[0] == f"{dest}/bin", "the venv's bin/ should lead PATH in the final stage"


def test_final_stage_has_no_build_tooling(final_stage):
    for ins in final_stage.all("RUN"):
        for tokens in shell_commands(ins.args):
            joined = " ".join(tokens)
            assert not pip_install_calls(joined), f"line {ins.lineno}: install in the build stage, not here"
            assert not re.search(r"\b(gcc|g\+\+|build-essential|make|cmake)\b", joined), (
                f"line {ins.lineno}: build tools in the final stage"
            )
    for ins in final_stage.all("COPY") + final_stage.all("ADD"):
        flags, paths = split_flags(ins.args)
        if "from" not in flags:
            assert not any(p.rstrip("/") in {"src", "."} for p in paths[:-1]), (
                f"line {ins.lineno}: the final stage should not copy the source tree"
            )


def test_pip_installs_the_project_from_the_local_source_tree(stages):
    verified = []
    for stage in stages[:-1]:
        workdir = "/"
        placed: set[str] = set()  # absolute paths of files/dirs copied from the context
        for ins in stage.instructions:
            if ins.keyword == "WORKDIR":
                workdir = resolve(workdir, ins.args)
            elif ins.keyword in {"COPY", "ADD"}:
                flags, paths = split_flags(ins.args)
                if "from" in flags:
                    continue
                sources, dest = paths[:-1], paths[-1]
                dest_abs = resolve(workdir, dest)
                into_dir = dest.endswith("/") or len(sources) > 1
                for src in sources:
                    if (REPO_ROOT / src).is_dir():
                        # Docker copies a directory's contents into dest.
                        placed.add(dest_abs)
                    else:
                        for match in sorted(REPO_ROOT.glob(src)) or [REPO_ROOT / src]:
                            placed.add(resolve(dest_abs, match.name) if into_dir else dest_abs)
            elif ins.keyword == "RUN":
                for call in pip_install_calls(ins.args):
                    assert "-e" not in call and "--editable" not in call, (
                        f"line {ins.lineno}: an editable install points at the build stage's source tree"
                    )
                    for target in pip_positionals(call):
                        if not target.startswith((".", "/")):
                            continue
                        target_dir = resolve(workdir, re.sub(r"\[.*\]$", "", target))
                        if f"{target_dir}/pyproject.toml" in placed and f"{target_dir}/src" in placed:
                            verified.append((ins.lineno, target))
    assert verified, "no `pip install <dir>` whose <dir> received pyproject.toml and src/ via COPY"


def test_final_user_is_fixed_non_root_numeric(final_stage):
    user = final_stage.last("USER")
    assert user is not None, "final stage has no USER (would run as root)"
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit(), f"USER {user.args!r}: use a numeric UID so runAsNonRoot can verify it"
    assert int(uid) != 0, "USER is root"
    if gid:
        assert gid.isdigit() and int(gid) != 0, f"USER {user.args!r}: group should be numeric, non-root"
    # USER must come after every RUN that needs root, i.e. be the last user switch.
    assert all(i.lineno < user.lineno for i in final_stage.all("RUN")), "RUN after USER in the final stage"


def test_image_runs_tally_serve_in_exec_form(final_stage):
    entrypoint, cmd = image_argv(final_stage)
    argv = entrypoint + cmd
    # Exact match: a shell-form wrapper (/bin/sh -c) would swallow SIGTERM.
    assert argv == ["tally", "serve"], f"image runs {argv}"


def test_expose_matches_listen_address(final_stage):
    exposed = [p.split("/")[0] for ins in final_stage.all("EXPOSE") for p in ins.args.split()]
    assert exposed == ["50051"], f"EXPOSE {exposed}"
    env = stage_env(final_stage)
    if LISTEN_VAR in env:
        assert port_of(env[LISTEN_VAR]) == int(exposed[0])


def test_healthcheck_if_present_is_valid_exec_form_python(final_stage):
    hc = final_stage.last("HEALTHCHECK")
    if hc is None or hc.args.strip().upper() == "NONE":
        pytest.skip("no HEALTHCHECK (optional; Kubernetes uses native gRPC probes)")
    _, rest = split_flags(hc.args.split("CMD", 1)[0])
    assert not rest, f"unexpected HEALTHCHECK options: {rest}"
    argv = exec_form(hc.args.split("CMD", 1)[1].strip())
    if argv[:2] == ["python", "-c"]:
        compile(argv[2], "<HEALTHCHECK>", "exec")  # raises SyntaxError when broken
        assert "grpc_health" in argv[2]


def test_dockerignore_excludes_local_state_but_keeps_sources():
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)

    def to_regex(pattern: str) -> re.Pattern[str]:
        pattern = pattern.strip("/")
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                j = pattern.index("]", i)
                out, i = out + pattern[i : j + 1], j + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out)

    def ignored(path: str) -> bool:
        # Docker semantics: the last matching pattern wins; a pattern that
        # matches a directory excludes everything below it.
        result = False
        prefixes = ["/".join(path.split("/")[: n + 1]) for n in range(path.count("/") + 1)]
        for pattern in patterns:
            negate = pattern.startswith("!")
            regex = to_regex(pattern.lstrip("!"))
            if any(regex.fullmatch(p) for p in prefixes):
                result = not negate
        return result

    for path in [
        ".venv/bin/python", ".git/HEAD", "node_modules/x/index.js", "tests/unit/test_x.py",
        "bench/run.py", "src/tally/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v/x",
        ".ruff_cache/x", ".hypothesis/examples/x", "tally.db", "src/tally/local.db", "tally.db-wal",
    ]:  # fmt: skip
        assert ignored(path), f".dockerignore should exclude {path}"
    for path in ["pyproject.toml", "README.md", "src/tally/__init__.py", "src/tally/cli.py"]:
        assert not ignored(path), f".dockerignore must not exclude {path} (needed by pip install)"


# --------------------------------------------------------------------------- #
# Kubernetes manifests
# --------------------------------------------------------------------------- #


def test_every_document_is_a_namespace_agnostic_object(manifests):
    assert manifests, "no manifests found under k8s/"
    for name, docs in manifests.items():
        assert docs, f"{name} is empty"
        for doc in docs:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{name}: incomplete object"
            assert doc["metadata"].get("name"), f"{name}: {doc['kind']} has no name"
            assert "namespace" not in doc["metadata"], f"{name}: hard-coded namespace"


def test_kustomization_lists_exactly_the_manifest_files(manifests):
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    assert kustomization["kind"] == "Kustomization"
    assert "namespace" not in kustomization, "the base should stay namespace-agnostic"
    resources = kustomization.get("resources", [])
    assert len(resources) == len(set(resources)), "duplicate entries in kustomization resources"
    assert set(resources) == set(manifests), (
        f"unlisted: {sorted(set(manifests) - set(resources))}, missing: {sorted(set(resources) - set(manifests))}"
    )


def test_kustomize_image_override_targets_the_workload_image(workloads):
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    names = {img["name"] for img in kustomization.get("images", [])}
    if not names:
        pytest.skip("no kustomize image overrides")
    for workload in workloads:
        for container in pod_spec(workload)["containers"]:
            # Image reference without tag or digest ("registry/repo:tag@sha256:..." -> "registry/repo").
            ref = container["image"].split("@", 1)[0]
            repo = re.sub(r":[^/:]+$", "", ref)
            assert repo in names, f"kustomize images do not cover {container['image']}"


def test_job_uses_the_same_image_as_the_deployment(deployment, job):
    images = {c["image"] for w in (deployment, job) for c in pod_spec(w)["containers"]}
    assert len(images) == 1, f"Deployment and migration Job use different images: {images}"


def test_deployment_shape(deployment, hpa):
    # The HorizontalPodAutoscaler owns the count: a `replicas` here would reset it on every apply.
    assert "replicas" not in deployment["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] == 3


def test_selectors_match_pod_labels(deployment, service, pdb, job):
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector_matches(selector, labels), "Deployment selector does not match its pod labels"
    assert selector_matches(service["spec"]["selector"], labels), "Service selects no server pods"
    assert selector_matches(pdb["spec"]["selector"]["matchLabels"], labels), "PDB selects no server pods"
    # Migration pods must not be mistaken for server pods by the Deployment,
    # the Service (traffic) or the PDB (availability accounting).
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    for name, sel in [
        ("Deployment", selector),
        ("Service", service["spec"]["selector"]),
        ("PodDisruptionBudget", pdb["spec"]["selector"]["matchLabels"]),
    ]:
        assert not selector_matches(sel, job_labels), f"{name} selector also matches migration Job pods"


def test_pod_security_context_matches_dockerfile_user(workloads, final_stage):
    uid, _, gid = final_stage.last("USER").args.partition(":")
    for workload in workloads:
        spec = pod_spec(workload)
        psc = spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, f"{workload['kind']}: pod runAsNonRoot not set"
        assert psc.get("runAsUser") == int(uid), f"{workload['kind']}: runAsUser != Dockerfile USER {uid}"
        if gid and "runAsGroup" in psc:
            assert psc["runAsGroup"] == int(gid)
        for container in spec["containers"]:
            csc = container.get("securityContext", {})
            where = f"{workload['kind']}/{container['name']}"
            if "runAsUser" in csc:
                assert csc["runAsUser"] == int(uid), f"{where}: runAsUser != Dockerfile USER"
            assert csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, where
            assert csc.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem is writable"
            assert csc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation allowed"
            assert csc.get("privileged", False) is False, f"{where}: privileged"
            assert "ALL" in csc.get("capabilities", {}).get("drop", []), f"{where}: capabilities not dropped"
            assert not csc.get("capabilities", {}).get("add"), f"{where}: capabilities added"


def test_container_port_matches_expose_probes_and_service(server_container, service, final_stage, configmap):
    exposed = int(next(p for ins in final_stage.all("EXPOSE") for p in ins.args.split()).split("/")[0])
    ports = server_container["ports"]
    grpc_ports = [p for p in ports if p.get("name") == "grpc"]
    assert len(grpc_ports) == 1, "container needs exactly one port named grpc"
    assert grpc_ports[0]["containerPort"] == exposed, "containerPort != Dockerfile EXPOSE"
    assert port_of(configmap["data"][LISTEN_VAR]) == exposed, f"{LISTEN_VAR} port != Dockerfile EXPOSE"

    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe_name in server_container, f"missing {probe_name}"
    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = server_container[probe_name]
        assert "grpc" in probe, f"{probe_name} should be a native gRPC probe"
        # grpc probes only accept a number; a named port is rejected by the API server.
        assert probe["grpc"]["port"] == exposed, f"{probe_name} probes port {probe['grpc']['port']}"
    startup = server_container["startupProbe"]
    if "grpc" in startup:
        assert startup["grpc"]["port"] == exposed

    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    (svc_port,) = service["spec"]["ports"]
    assert svc_port["targetPort"] == grpc_ports[0]["name"], "Service targetPort does not name the grpc port"
    assert svc_port["port"] == exposed
    assert svc_port.get("appProtocol") == "grpc"


def test_containers_run_the_right_tally_command(server_container, job, final_stage):
    assert container_argv(server_container, final_stage) == ["tally", "serve"]
    (migrate,) = pod_spec(job)["containers"]
    assert container_argv(migrate, final_stage) == ["tally", "migrate"]


def test_job_settings(job):
    spec = job["spec"]
    assert isinstance(spec.get("backoffLimit"), int) and spec["backoffLimit"] >= 0, "set backoffLimit"
    assert pod_spec(job).get("restartPolicy") == "Never"


def _secret_ref(container: dict[str, Any], var: str, secret: dict[str, Any], where: str) -> str | None:
    """The Secret key `var` comes from in this container (None when it is not set); fails on any other source."""
    entries = [e for e in container.get("env", []) if e["name"] == var]
    if not entries:
        return None
    assert len(entries) == 1, f"{where}: {var} should be set at most once"
    (entry,) = entries
    assert "value" not in entry, f"{where}: {var} given as a literal"
    ref = entry.get("valueFrom", {}).get("secretKeyRef")
    assert ref, f"{where}: {var} must come from a secretKeyRef"
    assert ref["name"] == secret["metadata"]["name"], f"{where}: unknown Secret {ref['name']}"
    secret_keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert ref["key"] in secret_keys, f"{where}: Secret has no key {ref['key']}"
    return ref["key"]


def test_database_urls_come_only_from_the_secret(deployment, job, secret, configmap, manifests):
    for var in (DB_URL_VAR, MIGRATE_URL_VAR):
        assert var not in configmap.get("data", {}), f"{var} must not live in the ConfigMap"
        assert var not in yaml.safe_dump(configmap), f"{var} must not live in the ConfigMap"
    configmaps = {d["metadata"]["name"] for docs in manifests.values() for d in docs if d["kind"] == "ConfigMap"}
    keys = {}
    for workload, var in ((deployment, DB_URL_VAR), (job, MIGRATE_URL_VAR)):
        for container in pod_spec(workload)["containers"]:
            where = f"{workload['kind']}/{container['name']}"
            keys[workload["kind"]] = _secret_ref(container, var, secret, where)
            assert keys[workload["kind"]], f"{where}: {var} should be set, from the Secret"
            env_from = container.get("envFrom", [])
            assert env_from, f"{where}: settings should come from the ConfigMap via envFrom"
            for source in env_from:
                assert "configMapRef" in source, f"{where}: unexpected envFrom source {source}"
                assert source["configMapRef"]["name"] in configmaps, f"{where}: unknown ConfigMap"
    # The schema owner's credentials never reach the server pods.
    for container in pod_spec(deployment)["containers"]:
        assert _secret_ref(container, MIGRATE_URL_VAR, secret, "Deployment") is None, (
            f"the server must not get {MIGRATE_URL_VAR}: it would hold the owner's credentials")
    assert keys["Deployment"] != keys["Job"], "the server and the migration Job should use different roles"


def _secret_value(secret: dict[str, Any], key: str) -> str:
    if key in secret.get("stringData", {}):
        return secret["stringData"][key]
    return base64.b64decode(secret["data"][key]).decode()


def test_server_runs_as_the_service_role_and_never_migrates(deployment, job, secret, configmap):
    """Defense in depth on PostgreSQL: the server's role owns no table (row-level security binds it, the
    journal refuses it UPDATE and DELETE), so it must not try to migrate; the Job migrates as the owner
    and grants the service role, named the same in the ConfigMap and in the server's URL."""
    settings = Settings.from_env(configmap["data"])  # the ConfigMap is valid as the server reads it
    assert settings.auto_migrate is False, f"{AUTO_MIGRATE_VAR} must be false: the server's role cannot migrate"
    assert settings.service_role, f"{SERVICE_ROLE_VAR} should name the server's database role"
    (server,) = pod_spec(deployment)["containers"]
    (migrate,) = pod_spec(job)["containers"]
    server_url = make_url(_secret_value(secret, _secret_ref(server, DB_URL_VAR, secret, "Deployment")))
    owner_url = make_url(_secret_value(secret, _secret_ref(migrate, MIGRATE_URL_VAR, secret, "Job")))
    assert server_url.get_backend_name() == owner_url.get_backend_name() == "postgresql"
    assert server_url.username == settings.service_role, "the server should connect as the service role"
    assert owner_url.username != settings.service_role, "the Job should connect as the schema owner"
    assert (server_url.host, server_url.port, server_url.database) == (
        owner_url.host, owner_url.port, owner_url.database), "both URLs should name the same database"


def test_configmap_holds_only_tally_settings(configmap):
    data = configmap["data"]
    assert data
    for key, value in data.items():
        assert key.startswith("TALLY_"), f"ConfigMap key {key} is not a TALLY_* setting"
        assert isinstance(value, str), f"ConfigMap value of {key} must be a string, got {type(value).__name__}"
    assert GRACE_VAR in data and LISTEN_VAR in data


def test_secret_is_a_placeholder_with_a_secret_store_note(secret):
    assert secret.get("type", "Opaque") == "Opaque"
    text = (K8S_DIR / "secret.yaml").read_text().lower()
    assert "secret store" in text, "secret.yaml should say real deployments supply the value"
    for value in secret.get("stringData", {}).values():
        assert "change_me" in value.lower(), "secret.yaml must only hold a placeholder"


def test_termination_grace_exceeds_shutdown_grace(deployment, configmap):
    grace = float(configmap["data"][GRACE_VAR])
    termination = pod_spec(deployment).get("terminationGracePeriodSeconds", 30)
    assert termination > grace, f"terminationGracePeriodSeconds {termination} <= {GRACE_VAR} {grace}"


def test_service_links_do_not_pollute_the_tally_env_namespace(workloads, service):
    env_prefix = re.sub(r"[^A-Z0-9]", "_", service["metadata"]["name"].upper())
    if env_prefix.startswith("TALLY"):
        for workload in workloads:
            assert pod_spec(workload).get("enableServiceLinks") is False, (
                f"{workload['kind']}: Service {service['metadata']['name']!r} would inject "
                f"{env_prefix}_SERVICE_HOST etc.; set enableServiceLinks: false"
            )


def test_resources_are_bounded(workloads):
    for workload in workloads:
        for container in pod_spec(workload)["containers"]:
            where = f"{workload['kind']}/{container['name']}"
            resources = container.get("resources", {})
            for resource in ("cpu", "memory"):
                request = resources.get("requests", {}).get(resource)
                limit = resources.get("limits", {}).get(resource)
                assert request is not None, f"{where}: no {resource} request"
                assert limit is not None, f"{where}: no {resource} limit"
                assert quantity(request) <= quantity(limit), f"{where}: {resource} request > limit"


def test_pdb_leaves_room_for_voluntary_disruptions(pdb, hpa):
    min_available = pdb["spec"]["minAvailable"]
    assert min_available == 2
    assert min_available < hpa["spec"]["minReplicas"], "PDB would block every drain"
