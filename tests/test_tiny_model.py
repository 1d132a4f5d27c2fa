"""The locally built tiny Qwen2 model: tokenizer survives AutoTokenizer, model generates, builds are cached."""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("trl")

from medllm_core.library.tiny_model import (  # noqa: E402
    MARKER_FILE,
    TINY_MODEL_ID,
    build_tiny_model,
    corpus_texts,
    ensure_tiny_model,
    is_tiny_model,
    train_tokenizer,
)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"

TEXTS = [
    "患者男，45岁，头痛三天，体温38.5℃，可以吃布洛芬吗？",
    "Adults usually take 200-400 mg of ibuprofen every 4-6 hours; don't exceed the label's limit.",
    "混合 mixed text: HbA1c 6.5%，血压 150/95 mmHg！\n\n  Call 120 / 911 now.",
    "Tabs\tand   spaces,\r\nnew lines, émoji 😀 and full-width ＡＢＣ１２３.",
    "It's, we'll, they've - contractions; 'quoted' and \"double\".",
]


def _corpus() -> list[Path]:
    files = sorted(SAMPLES.glob("*.jsonl"))
    assert files, "data/samples/*.jsonl is missing"
    return files


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("tiny") / "model"
    start = time.perf_counter()
    build_tiny_model(target, _corpus())
    print(f"\nbuild_tiny_model on the sample corpus: {time.perf_counter() - start:.2f}s")
    return target


def test_is_tiny_model() -> None:
    assert is_tiny_model(TINY_MODEL_ID)
    assert is_tiny_model(" Medllm/Tiny-Qwen2/ ")
    assert not is_tiny_model("Qwen/Qwen2.5-0.5B-Instruct")
    assert not is_tiny_model("/models/tiny-qwen2")


def test_autotokenizer_matches_trained_tokenizer(built: Path) -> None:
    from transformers import AutoTokenizer

    raw = train_tokenizer(corpus_texts(_corpus()))
    tok = AutoTokenizer.from_pretrained(built)
    assert type(tok).__name__ == "Qwen2Tokenizer"  # the class that rebuilds the pipeline on load

    for text in TEXTS + corpus_texts(_corpus()):
        ids = tok.encode(text, add_special_tokens=False)
        assert ids == raw.encode(text).ids, text
        # Both pipelines normalise to NFC first, so the round trip gives the NFC form.
        assert tok.decode(ids) == unicodedata.normalize("NFC", text)
        assert raw.decode(ids) == tok.decode(ids)

    # Merges actually fire (a vocab learnt with another pre-tokenizer would fall back to bytes).
    assert len(tok.encode("患者的血压和血糖", add_special_tokens=False)) < len("患者的血压和血糖".encode())
    # Special tokens are single ids and never split.
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        assert len(tok.encode(special, add_special_tokens=False)) == 1
    assert tok.eos_token == "<|im_end|>"
    assert tok.pad_token == "<|endoftext|>"
    assert tok.bos_token is None
    assert tok.encode("hi") == tok.encode("hi", add_special_tokens=False)  # nothing prepended


def test_model_loads_chats_and_generates(built: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.chat_template_utils import get_training_chat_template, qwen2_5_chat_template

    tok = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    cfg = model.config
    assert cfg.model_type == "qwen2"
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (64, 2, 4, 2)
    assert cfg.intermediate_size == 128 and cfg.tie_word_embeddings
    assert cfg.vocab_size == len(tok)
    eos_id, pad_id = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert cfg.eos_token_id == eos_id and cfg.pad_token_id == pad_id
    assert model.generation_config.eos_token_id == eos_id
    assert model.generation_config.pad_token_id == pad_id

    # Byte-identical Qwen2.5 template, which TRL maps to its assistant-only-loss training template.
    assert tok.chat_template == qwen2_5_chat_template
    assert get_training_chat_template(tok) is not None

    messages = [{"role": "system", "content": "你是医学助手。"}, {"role": "user", "content": "What is a fever?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\n你是医学助手。<|im_end|>\n<|im_start|>user\nWhat is a fever?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    assert prompt_len < out.shape[1] <= prompt_len + 5


def _weights(folder: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_ensure_is_cached_and_deterministic(tmp_path: Path) -> None:
    import torch

    corpus = _corpus()
    first = ensure_tiny_model(tmp_path / "cache", corpus)
    assert first.parent == tmp_path / "cache" and first.name.startswith("tiny-qwen2-")
    marker = json.loads((first / MARKER_FILE).read_text(encoding="utf-8"))
    assert first.name == f"tiny-qwen2-{marker['fingerprint'][:12]}"
    mtimes = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}

    again = ensure_tiny_model(tmp_path / "cache", corpus)
    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == mtimes  # not rebuilt
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [first.name]  # no temp folder left behind

    # Same inputs in another folder: identical tokenizer and weights.
    other = build_tiny_model(tmp_path / "other", corpus)
    assert (other / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()
    a, b = _weights(first), _weights(other)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)

    # Another seed: another cache entry with other weights.
    seeded = ensure_tiny_model(tmp_path / "cache", corpus, seed=1)
    assert seeded != first
    c = _weights(seeded)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_corpus_change_changes_fingerprint(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"问题 {i}：发烧怎么办？"},
                {"role": "assistant", "content": "多喝水。"},
            ]
        }
        for i in range(20)
    ]
    corpus.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    first = ensure_tiny_model(tmp_path / "cache", [corpus])
    corpus.write_text(
        corpus.read_text(encoding="utf-8") + json.dumps({"text": "Rest and fluids."}) + "\n", encoding="utf-8"
    )
    second = ensure_tiny_model(tmp_path / "cache", [corpus])
    assert first != second and (second / MARKER_FILE).is_file()
    # A tiny corpus learns fewer merges; the model's vocab follows the tokenizer, not the requested size.
    assert json.loads((second / "config.json").read_text())["vocab_size"] < 1024


def test_build_without_corpus_fails(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_tiny_model(tmp_path / "x", [])
    assert not (tmp_path / "x").exists()


def test_build_time_is_reported(tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    # Imports are warm here (earlier tests); this measures tokenizer training + init + save.
    start = time.perf_counter()
    build_tiny_model(tmp_path / "timed", _corpus())
    seconds = time.perf_counter() - start
    record_property("tiny_build_seconds", round(seconds, 3))
    print(f"\nwarm build_tiny_model: {seconds:.2f}s")
