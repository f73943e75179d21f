"""What ``run.json`` says about a run besides its status and times (trainctl.io.records)."""

from __future__ import annotations

import os
from typing import Any

from trainctl.data.facts import fingerprint
from trainctl.io.records import environment, git_commit
from trainctl.train.setup import Setup
from trainctl.train.state import spec_sha256


def describe_run(setup: Setup, spec_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """``name``, ``device``, ``spec_sha256`` (of the resolved spec, as checkpoints record
    it), ``data`` (the training split's fingerprint: SHA-256 of its arrays, their shapes and
    dtypes, and the split sizes), ``versions`` and ``git`` (the commit of the work tree
    holding ``spec_file``, or None)."""
    data = fingerprint(setup.splits.train)
    data["sizes"] = dict(setup.splits.sizes)
    return {"name": setup.spec.name, "device": str(setup.device),
            "spec_sha256": spec_sha256(setup.resolved), "data": data,
            "versions": environment(),
            "git": git_commit(spec_file) if spec_file is not None else None}
