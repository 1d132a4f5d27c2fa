"""A tiny, randomly initialised Qwen2 model + tokenizer, built locally from the sample corpus.

Why: the CPU default profile and the tests must train a real model end to end without
network access or downloaded weights. The folder written here is an ordinary Hugging Face
checkpoint (``model_type: qwen2``), so every loader and trainer treats it exactly like a
real Qwen2.5 checkpoint; only its size differs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import replace_directory, shared_mode, write_json

TINY_MODEL_ID = "medllm/tiny-qwen2"
MARKER_FILE = "medllm_tiny.json"
# Bump when the build recipe changes, so cached folders from an older recipe are not reused.
BUILD_VERSION = 1

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# Order fixes their ids: 0, 1, 2.
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]

MAX_POSITIONS = 4096
DEFAULT_HIDDEN_SIZE = 64
DEFAULT_NUM_LAYERS = 2
DEFAULT_VOCAB_SIZE = 1024


def is_tiny_model(name_or_path: str) -> bool:
    """True when a profile's model name asks for the locally built tiny model."""
    return name_or_path.strip().strip("/").lower() == TINY_MODEL_ID


def _iter_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _iter_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _iter_strings(value)


def corpus_texts(corpus_files: Iterable[Path]) -> list[str]:
    """All string values (recursively) of JSONL / JSON files, in a stable file order."""
    texts: list[str] = []
    for path in _sorted_files(corpus_files):
        raw = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            for line in raw.splitlines():
                if line.strip():
                    texts.extend(_iter_strings(json.loads(line)))
        else:
            texts.extend(_iter_strings(json.loads(raw)))
    return texts


def _sorted_files(corpus_files: Iterable[Path]) -> list[Path]:
    # Sorting makes the fingerprint and the trained vocabulary independent of glob order.
    return sorted((Path(p) for p in corpus_files), key=lambda p: p.name)


def _build_params(seed: int, hidden_size: int, num_layers: int, vocab_size: int) -> dict[str, int]:
    return {
        "build_version": BUILD_VERSION,
        "seed": seed,
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "vocab_size": vocab_size,
    }


def corpus_fingerprint(corpus_files: Iterable[Path], params: dict[str, int]) -> str:
    """sha256 over the corpus bytes and the build parameters."""
    digest = hashlib.sha256()
    for path in _sorted_files(corpus_files):
        data = path.read_bytes()
        # Length prefix so that moving bytes between files changes the hash.
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    digest.update(json.dumps(params, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()


def train_tokenizer(texts: list[str], vocab_size: int = DEFAULT_VOCAB_SIZE) -> Any:
    """Train a byte-level BPE with exactly the pipeline ``Qwen2Tokenizer`` rebuilds on load.

    ``AutoTokenizer`` loads a ``qwen2`` folder through ``Qwen2Tokenizer``, which keeps only the
    vocab and merges from tokenizer.json and re-creates normalizer / pre-tokenizer / decoder
    itself. Training with a different pipeline would give merges that never fire (or
    different ids) after reloading, so we train with Qwen's NFC + regex split + byte level.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tokenizer = Tokenizer(
        models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    )
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        # All 256 byte symbols, so any text (any language, emoji) stays encodable.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def _hf_tokenizer(raw: Any) -> Any:
    """Wrap the trained vocab/merges in ``Qwen2Tokenizer`` with Qwen2.5's special tokens and template."""
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer
    from trl.chat_template_utils import qwen2_5_chat_template

    model = json.loads(raw.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        # Like Qwen2.5: no BOS (so TRL prepends nothing), no UNK (byte level never needs it).
        unk_token=None,
        bos_token=None,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=MAX_POSITIONS,
        # Byte-identical to Qwen2.5's template, so TRL recognises it (e.g. for assistant-only loss).
        chat_template=qwen2_5_chat_template,
    )


def build_tiny_model(
    target_dir: Path,
    corpus_files: list[Path],
    *,
    seed: int = 0,
    hidden_size: int = DEFAULT_HIDDEN_SIZE,
    num_layers: int = DEFAULT_NUM_LAYERS,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
) -> Path:
    """Train the tokenizer, create a random Qwen2ForCausalLM and save both into ``target_dir``.

    Everything is written to a temp sibling folder that is renamed into place at the end,
    so a half-built ``target_dir`` never exists (an interrupted build leaves only a temp folder).
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    target_dir = Path(target_dir)
    corpus_files = [Path(p) for p in corpus_files]
    if not corpus_files:
        raise ValueError("build_tiny_model needs at least one corpus file")
    params = _build_params(seed, hidden_size, num_layers, vocab_size)
    fingerprint = corpus_fingerprint(corpus_files, params)

    tokenizer = _hf_tokenizer(train_tokenizer(corpus_texts(corpus_files), vocab_size))
    pad_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)

    config = Qwen2Config(
        vocab_size=len(tokenizer),  # may be < vocab_size when the corpus is small
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        # LoRA leaves the tied embedding / LM head frozen; with the usual 0.02 init the
        # logits of a 64-wide model stay near uniform and the loss can barely move.
        # A wider init gives LoRA room to show a real, falling loss curve.
        initializer_range=0.2,
        # No BOS, like the tokenizer: otherwise transformers "aligns" the config at every load and says so.
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(seed)  # same inputs -> identical weights
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=eos_id, pad_token_id=pad_id)

    target_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.", suffix=".tmp", dir=target_dir.parent))
    staging.chmod(shared_mode(directory=True))  # mkdtemp's 0700 would hide the model from other users
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        # Written last: its presence means the folder is complete.
        write_json(
            staging / MARKER_FILE,
            {
                "model_id": TINY_MODEL_ID,
                "fingerprint": fingerprint,
                **params,
                "actual_vocab_size": len(tokenizer),
                "corpus_files": [p.name for p in _sorted_files(corpus_files)],
            },
        )
        replace_directory(staging, target_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target_dir


def ensure_tiny_model(cache_dir: Path, corpus_files: list[Path], *, seed: int = 0) -> Path:
    """Return the cached tiny model for this corpus and seed, building it only if missing."""
    corpus_files = [Path(p) for p in corpus_files]
    params = _build_params(seed, DEFAULT_HIDDEN_SIZE, DEFAULT_NUM_LAYERS, DEFAULT_VOCAB_SIZE)
    fingerprint = corpus_fingerprint(corpus_files, params)
    target = Path(cache_dir) / f"tiny-qwen2-{fingerprint[:12]}"
    if (target / MARKER_FILE).is_file():
        return target
    return build_tiny_model(target, corpus_files, seed=seed)
