"""On a GPU nothing is copied between host and device per batch: checked without a GPU, on fake CUDA tensors.

Fake tensors carry shapes and devices but no values, so every aten operation of the per-batch path can
be recorded: one with a CPU tensor in or out is a host <-> device copy, and `_local_scalar_dense` (what
`.item()`, `float()` and `int()` call) waits for the device and copies a number to the host.
"""

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from utils.data import iterate_batches
from utils.engine import evaluate
from utils.models import FINAL, STEPS, build_model
from utils.robustness import PERTURBATIONS

HOST_SYNC = "aten._local_scalar_dense.default"

# Even fake CUDA tensors need a torch built with CUDA (pip's default build on Linux, which .ci/run and both jobs of
# the GitHub workflow install: tests/test_workflow.py checks they use no CPU-only wheels); a CPU-only build
# (conda-forge's on a machine without a GPU, macOS) cannot make them, and skips this module.
pytestmark = pytest.mark.skipif(not torch.backends.cuda.is_built(),
                                reason="this torch build has no CUDA support, so it cannot make fake CUDA tensors")


class RecordOps(TorchDispatchMode):
    """Records each aten op's name and the devices of the tensors it takes and gives."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple[str, set]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        devices = {t.device.type for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        self.ops.append((str(func), devices))  # before running it: an op that fails is recorded too
        out = func(*args, **(kwargs or {}))
        devices |= {t.device.type for t in tree_leaves(out) if isinstance(t, torch.Tensor)}
        return out


def _record_on_fake_cuda(run) -> list[tuple[str, set]]:
    """The ops of `run(model, x, y)` with the final model and 300 images, all fake CUDA tensors."""
    model = build_model(FINAL, seed=0)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = model.to("cuda", memory_format=torch.channels_last)
        x, y = torch.randn(300, 1, 28, 28, device="cuda"), torch.randint(0, 10, (300,), device="cuda")
        with RecordOps() as record:
            run(model, x, y)
    return record.ops


def test_training_batches_augmentation_and_forward_pass_stay_on_the_device():
    # Backward and the optimizer step cannot run on fake CUDA tensors without a driver; they only
    # touch the model's own tensors, which `fit` has put on the device.
    augment = dict(STEPS[FINAL].config.augment, fill=-0.42)

    def train_batches(model, x, y):
        for xb, yb in iterate_batches(x, y, 128, shuffle=True, augment=augment):
            F.cross_entropy(model(xb), yb)

    ops = _record_on_fake_cuda(train_batches)
    assert sum("convolution" in op for op, _ in ops) > 0
    assert [op for op, devices in ops if devices - {"cuda"} or op == HOST_SYNC] == []


def test_evaluation_waits_for_the_device_once_after_the_last_batch():
    def evaluate_in_batches_of_128(model, x, y):
        with pytest.raises(DataDependentOutputException):  # a fake tensor has no number to give
            evaluate(model, x, y, batch_size=128)

    ops = _record_on_fake_cuda(evaluate_in_batches_of_128)
    names = [op for op, _ in ops]
    convolutions = [i for i, op in enumerate(names) if "convolution" in op]
    per_batch = sum(isinstance(m, torch.nn.Conv2d) for m in build_model(FINAL).modules())
    assert len(convolutions) == 3 * per_batch  # all three batches (128 + 128 + 44) went through the model
    assert names.index(HOST_SYNC) > convolutions[-1]
    assert [op for op, devices in ops if devices - {"cuda"}] == []


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_notebook_04s_perturbations_work_on_images_on_the_gpu(name):
    # every tensor a perturbation makes (angles, shift directions, zoom matrices, noise) must be on the
    # images' device, or a learner with a GPU who moves the test set there gets a device-mismatch error
    perturb = PERTURBATIONS[name]
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.rand(6, 28, 28, device="cuda")
        with RecordOps() as record:
            out = perturb.apply(x, max(perturb.strengths, key=abs))
    assert out.device.type == "cuda" and out.shape == x.shape
    # a CPU tensor may go in only as a seeded draw copied over once (`_to_copy`), never into the arithmetic
    assert [op for op, devices in record.ops if devices - {"cuda"} and "_to_copy" not in op
            and not all(d == "cpu" for d in devices)] == []
