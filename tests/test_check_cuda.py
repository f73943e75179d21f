"""smoke, doctor and bench on a CUDA device (marked ``cuda``; skipped without one): the
checks pass, bench synchronizes and reports the allocator's peak for ours and torch's, and
the plain-PyTorch reference computes the same model on the device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainctl.autodiff import no_grad
from trainctl.check import SmokeOptions, smoke_spec
from trainctl.check.bench import bench_batch, bench_spec
from trainctl.check.diagnose import doctor_spec
from trainctl.check.torch_ref import TorchStep
from trainctl.spec import load_spec
from trainctl.train import prepare

from test_smoke import GOOD, write

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
RESNET = Path(__file__).resolve().parent.parent / "specs" / "digits_resnet.yaml"


def test_bench_on_cuda_reports_the_allocator_peak(tmp_path):
    r = bench_spec(write(tmp_path, "s.yaml", GOOD), iterations=3, warmup=1, device="cuda",
                   compare_torch=True)
    assert r.device.startswith("cuda")
    assert r.memory["cuda_peak_mib"] > 0 and r.memory["torch_cuda_peak_mib"] > 0
    assert all(len(t.forward.seconds) == 3 and min(t.forward.seconds) > 0 for t in r.layers)
    assert len(r.torch["step"].seconds) == 3


def test_bench_a_dag_on_cuda_and_its_torch_reference_agrees():
    setup = prepare(load_spec(RESNET), "cuda")
    x, y = bench_batch(setup, 32)
    assert x.data.is_cuda
    ref = TorchStep(setup)
    ref.model.eval()
    assert all(p.is_cuda for p in ref.model.parameters())
    with no_grad():
        ours = setup.model(x, training=False).data
    with torch.no_grad():
        torch.testing.assert_close(ref.model(x.data), ours, rtol=1e-4, atol=1e-4)
    r = bench_spec(RESNET, iterations=2, warmup=1, device="cuda", batch_size=32)
    assert len(r.layers) == len(setup.model.plan.nodes) + 1


def test_smoke_and_doctor_pass_on_cuda(tmp_path):
    path = write(tmp_path, "s.yaml", GOOD)
    options = SmokeOptions(steps=3, overfit_steps=40, grad_samples=4, device="cuda")
    smoke = smoke_spec(path, options)
    assert smoke.ok, smoke.summary()
    doctor = doctor_spec(path, options)
    assert doctor.check("gradcheck").status == "pass", doctor.check("gradcheck").detail
