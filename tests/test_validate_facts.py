"""``trainctl validate`` without numpy: each source's ``facts`` (sizes, shapes, classes
without arrays) against what its ``load`` gives, the same errors for unreadable text, numpy
imported on first use by ``trainctl.data``, and a child process that validates every example
spec with one source and a split importing neither torch nor numpy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trainctl.data.sources import SourceFacts, source_facts, sources
from trainctl.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def _from_load(source, config, base_dir=None) -> SourceFacts:
    """The oracle: facts read off the loaded arrays."""
    data = source.load(config, 3, base_dir)
    return SourceFacts(len(data), tuple(data.x.shape[1:]), tuple(data.y.shape[1:]),
                       data.num_classes, data.class_names)


@pytest.mark.parametrize("name, options", [
    ("blobs", {"n_samples": 31}), ("moons", {"n_samples": 20}), ("circles", {}),
    ("spirals", {"n_samples": 25, "classes": 3}), ("digits", {}), ("iris", {}), ("wine", {}),
    ("breast_cancer", {}), ("diabetes", {}),
])
def test_facts_are_what_load_gives(name, options):
    source = sources.get(name)
    assert hasattr(source, "facts")
    config = source.Config(**options)
    assert source_facts(source, config, 3) == _from_load(source, config)


@pytest.mark.parametrize("length, stride", [(4, None), (4, 3), (1, 1), (9, 2)])
def test_char_sequences_facts_are_what_load_gives(tmp_path, length, stride):
    (tmp_path / "a.txt").write_text("hello wörld\nof text", encoding="utf-8")
    source = sources.get("char_sequences")
    config = source.Config(path="a.txt", sequence_length=length, stride=stride)
    facts = source_facts(source, config, 0, tmp_path)
    assert facts == _from_load(source, config, tmp_path)
    assert facts.num_classes == len(set("hello wörld\nof text"))


def test_char_sequences_facts_raise_what_load_raises(tmp_path):
    source = sources.get("char_sequences")
    (tmp_path / "short.txt").write_text("abc")
    (tmp_path / "bad.txt").write_bytes(b"ab\xff\xfecd")
    for path, words in (("short.txt", "3 characters, fewer than sequence_length + 1 = 4"),
                        ("bad.txt", "not UTF-8"), ("none.txt", "none.txt")):
        config = source.Config(path=path, sequence_length=3)
        with pytest.raises(DataError) as by_facts:
            source.facts(config, 0, tmp_path)
        with pytest.raises(DataError) as by_load:
            source.load(config, 0, tmp_path)
        assert str(by_facts.value) == str(by_load.value) and words in str(by_facts.value)


def test_a_source_without_facts_is_described_from_its_arrays(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,y\n1,2,x\n3,4,z\n5,6,x\n")
    source = sources.get("csv")
    assert not hasattr(source, "facts")
    config = source.Config(path="t.csv", label="y")
    assert source_facts(source, config, 0, tmp_path) == \
        SourceFacts(3, (2,), (), 2, ("x", "z"))


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_trainctl_data_imports_numpy_on_first_use():
    proc = _run("import sys, trainctl.data.pipeline\n"
                "from trainctl.data.lazy import numpy as np\n"
                "before = 'numpy' in sys.modules\n"
                "import numpy\n"
                "print(before, np.zeros is numpy.zeros, np.float32 is numpy.float32)")
    assert proc.stdout.split() == ["False", "True", "True"], proc.stdout + proc.stderr


def test_validate_imports_neither_torch_nor_numpy():
    """Every example spec with one source and a split; a spec with train/validation/test
    sections runs its train steps over the described data, with numpy."""
    single = [s for s in SPECS if "train" not in yaml.safe_load(s.read_text())["data"]]
    assert len(single) >= 6
    code = ("import sys\n"
            "from trainctl.cli.app import app\n"
            "try:\n"
            "    app(sys.argv[1:])\n"
            "except SystemExit as exc:\n"
            "    print(exc.code, sorted({m.split('.')[0] for m in sys.modules}\n"
            "                           & {'torch', 'numpy', 'sklearn', 'scipy', 'rich'}))\n")
    proc = _run(code, "validate", *map(str, single))
    assert proc.stdout.splitlines()[-1] == "0 []", proc.stdout + proc.stderr
    assert proc.stdout.count("OK  ") == len(single)
