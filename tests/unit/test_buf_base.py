"""scripts/buf-base, which names the commit `buf breaking` judges the protos against (scripts/lint), in real
git repositories: a branch against its merge base with main (origin/main first), main against its previous
commit, and nothing for a lone commit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "buf-base"
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *argv: str) -> str:
    return subprocess.run(["git", *argv], cwd=repo, env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(repo: Path, name: str) -> str:
    (repo / name).write_text(name)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD")


def base(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT)], cwd=repo, env=GIT_ENV, capture_output=True, text=True, timeout=30)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    return tmp_path


def test_a_branch_is_judged_against_its_merge_base_with_main(repo: Path) -> None:
    commit(repo, "a")
    fork = commit(repo, "b")
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, "c")
    commit(repo, "d")  # a break in c stays visible however many commits follow
    git(repo, "checkout", "-q", "main")
    commit(repo, "e")  # main moved on: still the fork point, not main's tip
    git(repo, "checkout", "-q", "feature")
    assert base(repo).stdout == f"{fork} (main)\n"


def test_origin_main_comes_first(repo: Path) -> None:
    commit(repo, "a")
    published = commit(repo, "b")
    git(repo, "update-ref", "refs/remotes/origin/main", published)
    commit(repo, "c")  # local main ahead of origin/main, and HEAD is on it
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, "d")
    assert base(repo).stdout == f"{published} (origin/main)\n"


def test_main_itself_and_a_lone_commit(repo: Path) -> None:
    first = commit(repo, "a")
    assert base(repo).returncode == 1 and base(repo).stdout == ""  # nothing before the first commit
    commit(repo, "b")
    assert base(repo).stdout == f"{first} (HEAD~1)\n"
