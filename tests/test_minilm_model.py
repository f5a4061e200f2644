"""The router's MiniLM file: re-quantized once, pinned, and close to the wheel's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.routing import minilm_model
from gateway.routing.encoders import MiniLMEncoder

SENTENCES = [
    "What time is it in Tokyo right now?",
    "List the open pull requests of this repository",
    "Tell me a joke about databases",
    "Convert 20 euros to dollars",
]


def test_building_reproduces_the_pinned_file(tmp_path: Path) -> None:
    built = minilm_model.build(tmp_path)
    assert built.name == minilm_model.FILE_NAME
    assert minilm_model.sha256(built) == minilm_model.PREPARED_SHA256
    assert [p.name for p in tmp_path.iterdir()] == [minilm_model.FILE_NAME]  # no leftovers


def test_the_encoder_runs_the_prepared_file_with_the_wheels_vectors() -> None:
    prepared = minilm_model.prepared_path()
    assert prepared is not None and prepared.stat().st_size < 30_000_000
    encoder = MiniLMEncoder()
    vectors = encoder.encode(SENTENCES, query=True)
    assert encoder.model_path == prepared

    original = MiniLMEncoder()
    original_path = minilm_model.source_path()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(minilm_model, "prepared_path", lambda: None)
        reference = original.encode(SENTENCES, query=True)
    assert original.model_path == original_path
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() > 0.97, cosines
    # Each sentence is still nearest to itself across the two models.
    assert (np.argmax(vectors @ reference.T, axis=1) == np.arange(len(SENTENCES))).all()


def test_a_missing_prepared_file_is_built_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(minilm_model, "folders", lambda: [tmp_path / "share", tmp_path / "tmp"])
    # The child process builds into the first folder (it reads --folder, not folders()).
    path = minilm_model.prepared_path()
    assert path == tmp_path / "share" / minilm_model.FILE_NAME
    assert minilm_model.sha256(path) == minilm_model.PREPARED_SHA256
