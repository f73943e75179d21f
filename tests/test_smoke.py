"""``trainctl smoke``: the checks on real tiny specs, with values from independent
recomputations (torch.nn.functional on the same weights), broken specs that must fail with
the right names, timeouts, JSON and JUnit XML (parsed with xml.etree)."""

from __future__ import annotations

import json
import math
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from trainctl.autodiff import Variable
from trainctl.check import SMOKE, SmokeOptions, find_specs, junit_xml, smoke_spec, smoke_specs
from trainctl.check.deadline import Deadline, SpecTimeout
from trainctl.check.runner import Context
from trainctl.cli.app import app
from trainctl.errors import TrainctlError

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ["validate", "build", "gradients", "steps", "overfit", "checkpoint", "eval"]

IRIS = """\
name: tiny-iris
seed: 1
data:
  source: {type: iris}
  split: {validation: 0.2, test: 0.2}
  batch_size: 16
  standardize: true
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: relu%s}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.02}
train: {epochs: 1}
"""
GOOD = IRIS % ""
# zero kernel and bias under a ReLU: the layer outputs 0 and relu'(0) = 0, so no gradient
# reaches dense/kernel, dense/bias or dense_1/kernel (dense_1/bias still learns the priors)
DEAD = IRIS % ", kernel_initializer: zeros"
TYPO = GOOD.replace("batch_size: 16", "batch_szie: 16")
FAST = SmokeOptions(steps=5, overfit_steps=40)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    d = tmp_path_factory.mktemp("specs")
    return {"good": write(d, "a_good.yaml", GOOD), "dead": write(d, "b_dead.yaml", DEAD),
            "typo": write(d, "c_typo.yaml", TYPO), "dir": d}


@pytest.fixture(scope="module")
def good_report(specs):
    return smoke_spec(specs["good"], FAST)


def _torch_loss(setup, weights, x, y) -> float:
    """The mean cross-entropy of the MLP from its weights, in plain torch (an oracle)."""
    h = F.relu(x @ weights["dense/kernel"] + weights["dense/bias"])
    logits = h @ weights["dense_1/kernel"] + weights["dense_1/bias"]
    return float(F.cross_entropy(logits.double(), y.long()))


def test_good_spec_passes_every_check(good_report):
    assert [c.name for c in good_report.checks] == CHECKS
    assert good_report.ok, good_report.summary()
    assert all(c.status == "pass" for c in good_report.checks)
    assert good_report.name == "tiny-iris"
    assert good_report.summary() == "7/7 passed"


def test_values_agree_with_a_torch_recomputation(specs):
    from trainctl.spec import load_spec
    from trainctl.train import prepare
    from trainctl.train.loop import to_tensors

    report = smoke_spec(specs["good"], FAST)
    setup = prepare(load_spec(specs["good"]), "cpu")  # same seed: same initial weights
    weights = {k: v.clone() for k, v in setup.model.state_dict().items()}
    x, y = (t.data for t in to_tensors(next(iter(setup.splits.train.iterate(0))), setup.device))
    overfit = report.check("overfit").values
    # the overfit check starts from the initial weights on the first 32 samples of batch 1
    assert overfit["losses"][0] == pytest.approx(_torch_loss(setup, weights, x, y), rel=1e-5)
    assert overfit["losses"][-1] <= 0.5 * overfit["losses"][0]
    assert overfit["steps"] == len(overfit["losses"]) - 1
    assert overfit["losses"][-2] > 0.5 * overfit["losses"][0]  # it stopped at the first success
    steps = report.check("steps").values["losses"]
    assert len(steps) == 5 and all(math.isfinite(v) for v in steps)
    build = report.check("build").values
    assert build["params"] == 4 * 8 + 8 + 8 * 3 + 3
    assert build["sizes"] == {"train": 90, "validation": 30, "test": 30}
    norms = report.check("gradients").values["grad_norms"]
    assert set(norms) == {"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"}
    assert all(v > 0 for v in norms.values())


def test_dead_layer_is_named(specs):
    report = smoke_spec(specs["dead"], FAST)
    assert not report.ok
    grads = report.check("gradients")
    assert grads.status == "fail"
    assert grads.values["all zero (dead)"] == ["dense/kernel", "dense/bias", "dense_1/kernel"]
    assert "all zero (dead) gradient: dense/kernel, dense/bias, dense_1/kernel" in grads.detail
    assert report.check("overfit").status == "fail"  # the output bias alone cannot halve it
    # the other checks still ran
    assert report.check("checkpoint").status == "pass"
    assert report.check("eval").status == "pass"


def test_detached_variable_is_named(specs):
    from trainctl.spec import load_spec
    from trainctl.train import prepare
    from trainctl.train.loop import to_tensors

    setup = prepare(load_spec(specs["good"]), "cpu")
    setup.model.layers[0].weights.append(Variable(torch.zeros(3), name="dense/unused"))
    ctx = Context(path=specs["good"], options=FAST, deadline=Deadline(None), setup=setup,
                  batch=to_tensors(next(iter(setup.splits.train.iterate(0))), setup.device))
    grads = {c.name: c for c in SMOKE}["gradients"].run(ctx)
    assert grads.status == "fail"
    assert grads.values["detached (no path from the loss)"] == ["dense/unused"]
    assert "dense/unused" in grads.detail and "dense/kernel" not in grads.detail


def test_non_finite_loss_fails_the_steps(specs, tmp_path):
    huge = write(tmp_path, "huge.yaml", GOOD.replace("learning_rate: 0.02",
                                                     "learning_rate: 1.0e+30"))
    report = smoke_spec(huge, SmokeOptions(steps=20, overfit_steps=5))
    steps = report.check("steps")
    assert steps.status == "fail" and "the loss is nan" in steps.detail
    assert not math.isfinite(steps.values["losses"][-1])
    assert all(math.isfinite(v) for v in steps.values["losses"][:-1])


def test_typo_fails_validation_and_skips_the_rest(specs):
    report = smoke_spec(specs["typo"], FAST)
    first = report.checks[0]
    assert first.name == "validate" and first.status == "fail"
    assert "c_typo.yaml:6" in first.detail and "batch_szie" in first.detail
    assert [c.status for c in report.checks[1:]] == ["skip"] * 6
    assert report.name is None


def test_an_unknown_layer_option_fails_validation_not_build(tmp_path):
    """What ``trainctl validate`` rejects (an unknown activation, found by the kinds'
    checks, not by the top-level schema) fails smoke's validate check."""
    bad = write(tmp_path, "bad_act.yaml", GOOD.replace("activation: relu", "activation: nonexistent_act"))
    report = smoke_spec(bad, FAST)
    first = report.checks[0]
    assert (first.name, first.status) == ("validate", "fail"), first
    assert "bad_act.yaml:" in first.detail and "nonexistent_act" in first.detail, first.detail
    assert all(c.status == "skip" for c in report.checks[1:]), report.checks


def test_one_failing_spec_does_not_stop_the_others(specs):
    seen = []
    reports = smoke_specs([specs["dir"]], FAST, on_report=seen.append)
    assert [Path(r.spec).name for r in reports] == ["a_good.yaml", "b_dead.yaml", "c_typo.yaml"]
    assert [r.ok for r in reports] == [True, False, False]
    assert seen == reports


def test_find_specs(specs, tmp_path):
    assert find_specs([specs["dir"], specs["good"]]) == sorted(specs["dir"].glob("*.yaml"))
    with pytest.raises(TrainctlError, match="no such spec"):
        find_specs([tmp_path / "missing.yaml"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainctlError, match="holds no spec"):
        find_specs([tmp_path / "empty"])


def test_timeout_fails_the_spec_and_skips_the_rest(specs):
    report = smoke_spec(specs["good"], SmokeOptions(steps=10_000, timeout=0.5))
    failed = report.failed
    assert len(failed) == 1 and "timed out after 0.5 s" in failed[0].detail
    after = report.checks[report.checks.index(failed[0]) + 1:]
    assert after and all(c.status == "skip" for c in after)
    assert report.seconds < 5


def test_deadline_interrupts_only_inside_a_check():
    with Deadline(0.05) as d:
        time.sleep(0.15)  # between two checks: the timer fires but does not raise here
        t0 = time.perf_counter()
        with pytest.raises(SpecTimeout):
            with d.interruptible():  # ... the next check raises at once
                time.sleep(5)
        assert time.perf_counter() - t0 < 1
    with Deadline(0.05) as d:
        t0 = time.perf_counter()
        with pytest.raises(SpecTimeout):
            with d.interruptible():
                time.sleep(5)  # interrupted by the timer
        assert time.perf_counter() - t0 < 1


def test_deadline_lets_the_engine_return_first():
    # a function whose code says it lives in trainctl/autodiff/: the timer must not unwind it
    code = "import time\ndef spin(done):\n    time.sleep(0.3)\n    done.append(1)\n"
    scope: dict = {}
    exec(compile(code, str(Path("x") / "trainctl" / "autodiff" / "fake.py"), "exec"), scope)
    done: list = []
    with Deadline(0.05) as d:
        with pytest.raises(SpecTimeout):
            with d.interruptible():
                scope["spin"](done)  # the alarm fires in here ...
                time.sleep(5)        # ... and raises here, once spin has returned
    assert done == [1]


def test_deadline_is_cooperative_off_the_main_thread():
    caught = []

    def worker():
        with Deadline(0.01) as d:
            time.sleep(0.03)
            try:
                d.check()
            except SpecTimeout as exc:
                caught.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert len(caught) == 1 and caught[0].seconds == 0.01
    with pytest.raises(ValueError):
        Deadline(0)


def test_junit_xml_is_valid_and_counts(specs, good_report):
    bad = smoke_spec(specs["typo"], FAST)
    root = ET.fromstring(junit_xml([good_report, bad]))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("14", "1", "6")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["tiny-iris", "c_typo"]
    assert [c.get("name") for c in suites[0].findall("testcase")] == CHECKS
    assert suites[0].get("failures") == "0" and suites[1].get("failures") == "1"
    failure = suites[1].find("testcase/failure")
    assert "batch_szie" in failure.get("message") and failure.text
    assert len(suites[1].findall("testcase/skipped")) == 6
    for case in root.iter("testcase"):
        assert float(case.get("time")) >= 0


def test_cli_table_exit_code_junit_and_json(specs, tmp_path):
    runner = CliRunner()
    report_file = tmp_path / "report.xml"
    result = runner.invoke(app, ["smoke", str(specs["dir"]), "--steps", "3",
                                 "--overfit-steps", "40", "--junit", str(report_file)])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "a_good.yaml" in out and "7/7 passed" in out
    assert "gradients" in out and "dense/kernel" in out
    assert "1 of 3 specs passed" in out
    root = ET.parse(report_file).getroot()
    assert root.get("tests") == "21" and len(root.findall("testsuite")) == 3
    assert not list(tmp_path.glob(".report.xml.*"))  # no temporary file left behind

    result = runner.invoke(app, ["smoke", str(specs["good"]), "--steps", "2", "--json",
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] is True and payload["passed"] == 1 and payload["failed"] == 0
    assert payload["options"]["steps"] == 2
    [spec] = payload["specs"]
    assert [c["name"] for c in spec["checks"]] == CHECKS
    assert len(spec["checks"][3]["values"]["losses"]) == 2


def test_cli_timeout_fails_a_slow_spec_and_runs_the_next(specs):
    result = CliRunner().invoke(app, ["smoke", str(specs["good"]), str(specs["typo"]),
                                      "--steps", "100000", "--timeout", "0.5", "--json"])
    assert result.exit_code == 1
    good, typo = json.loads(result.stdout)["specs"]
    statuses = [c["status"] for c in good["checks"]]
    assert "fail" in statuses and statuses[-1] == "skip"
    assert any("timed out after 0.5 s" in c["detail"] for c in good["checks"])
    assert typo["checks"][0]["status"] == "fail"  # the next spec still ran


def test_cli_user_errors_exit_2(specs, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["smoke", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no such spec" in result.stderr
    result = runner.invoke(app, ["smoke", str(specs["good"]), "--device", "tpu"])
    assert result.exit_code == 2 and "unknown device 'tpu'" in result.stderr
    result = runner.invoke(app, ["smoke", str(specs["good"]), "--junit",
                                 str(tmp_path / "no" / "dir" / "r.xml"), "--steps", "1"])
    assert result.exit_code == 2 and "cannot write" in result.stderr
    assert "nothing was run" in result.stderr and "7/7" not in result.stderr  # refused first


def test_readme_test_command_runs_the_smoke_and_ci_runs_it_verbatim():
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```bash") + 1:]
    first, second, end = block[:3]
    assert end == "```"
    assert "python -m pytest" in second and second.endswith("trainctl smoke specs/")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert second in ci
