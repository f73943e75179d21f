"""``prefetch_to_device``: batches as torch tensors on a device, copied ahead.

The only module of trainctl.data that touches torch, and only inside the iteration
(imported lazily), so importing trainctl.data never loads torch.
"""

from __future__ import annotations

from typing import Any, Iterator

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import Dataset, Key, check_int, transformations
from trainctl.data.parallel import ahead
from trainctl.data.steps import Step
from trainctl.data.structure import map_structure
from trainctl.errors import DataError


@transformations.register("prefetch_to_device")
class PrefetchToDevice(Step):
    """Each element's leaves as torch tensors on ``device``, made by a background thread
    up to ``buffer_size`` elements ahead.

    On CUDA the host copy is put in pinned (page-locked) memory and sent with
    ``non_blocking=True``, so the transfer overlaps the step computing on the previous
    batch; on the CPU the tensors share the arrays' memory (``torch.from_numpy``).
    ``device`` is anything ``torch.device`` accepts (``"cpu"``, ``"cuda:0"``, a device).
    String leaves cannot be sent (DataError). ``element_spec`` still describes the numpy
    arrays.
    """

    def __init__(self, input: Dataset, device: Any, buffer_size: int = 2):
        super().__init__(input)
        check_int("prefetch_to_device", "buffer_size", buffer_size, minimum=1)
        self.device = device
        self.buffer_size = int(buffer_size)

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        import torch  # lazily: only this step needs torch

        device = torch.device(self.device)
        pin = device.type == "cuda"

        def send(array: np.ndarray) -> Any:
            if array.dtype.kind in "USO":
                raise DataError(f"prefetch_to_device: cannot send {array.dtype} arrays to a device")
            if not (array.flags.writeable and array.flags.c_contiguous):
                array = np.array(array, order="C")  # torch wants its own, writable memory
            host = torch.from_numpy(array)
            if pin:
                return host.pin_memory().to(device, non_blocking=True)
            return host.to(device)

        def produce() -> Iterator[Any]:
            for element in self.input._iterate(key, start):
                yield map_structure(send, element)

        return ahead(produce, self.buffer_size, "trainctl-prefetch")

    def _params(self) -> dict[str, Any]:
        return {"device": str(self.device)}
