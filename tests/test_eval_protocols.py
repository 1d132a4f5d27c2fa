"""The evaluation engine on the tiny model: batch-size invariance, the loglik protocol, adapter switching."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from medllm_core.library.evaluation.batching import length_sorted_batches  # noqa: E402
from medllm_core.library.evaluation.generation import chat_prompt_ids, end_token_ids, generate  # noqa: E402
from medllm_core.library.evaluation.loglik import (  # noqa: E402
    LoglikQuery,
    best_candidate,
    letter_sets,
    score_queries,
)
from medllm_core.library.evaluation.mcq import McqItem, load_mcq_file  # noqa: E402
from medllm_core.library.evaluation.protocols import (  # noqa: E402
    chance_accuracy,
    conversation,
    score_loglik,
    shot_pool,
    shots_for,
)
from medllm_core.library.evaluation.variant_models import VariantModels  # noqa: E402
from medllm_core.library.evaluation.variants import Variant  # noqa: E402
from medllm_core.library.tiny_model import build_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_MCQ = REPO / "data" / "samples" / "eval_mcq_zh_en.jsonl"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    from medllm_core.library.training.model_loading import load_model, load_tokenizer

    folder = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model",
                              sorted((REPO / "data" / "samples").glob("*.jsonl")), seed=7)
    return folder, load_model(str(folder), torch.float32), load_tokenizer(str(folder))


@pytest.fixture(scope="module")
def items() -> list[McqItem]:
    return load_mcq_file(str(SAMPLE_MCQ))[0]


def test_batches_cover_every_index_once_and_respect_the_budget() -> None:
    lengths = [5, 50, 7, 49, 300, 3, 8, 8, 9, 51]
    batches = list(length_sorted_batches(lengths, max_items=3, max_tokens=120, extra_tokens=10))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches[0] == [4]  # longest first, alone: 310 tokens is over the budget, still evaluated
    for batch in batches:
        assert len(batch) <= 3
        if len(batch) > 1:
            assert len(batch) * (max(lengths[i] for i in batch) + 10) <= 120


def test_generate_is_identical_at_batch_1_and_batch_8(tiny, items) -> None:
    _, model, tokenizer = tiny
    conversations = [conversation(i, []) for i in items]
    one = generate(model, tokenizer, conversations, max_new_tokens=12, batch_size=1)
    eight = generate(model, tokenizer, conversations, max_new_tokens=12, batch_size=8)
    budget = generate(model, tokenizer, conversations, max_new_tokens=12, batch_size=64, max_batch_tokens=2000)
    assert one == eight == budget
    assert len(one) == len(items) and any(one)


def _queries(tokenizer, items: list[McqItem]) -> list[LoglikQuery]:
    prompts = chat_prompt_ids(tokenizer, [conversation(i, []) for i in items])
    return [LoglikQuery(p, list(i.options), i.multiple) for p, i in zip(prompts, items, strict=True)]


def test_loglik_is_identical_at_batch_1_and_batch_8(tiny, items) -> None:
    _, model, tokenizer = tiny
    queries = _queries(tokenizer, items)
    end = end_token_ids(model, tokenizer)[0]
    one = score_queries(model, tokenizer, queries, end_id=end, batch_size=1)
    eight = score_queries(model, tokenizer, queries, end_id=end, batch_size=8)
    assert [best_candidate(s) for s in one] == [best_candidate(s) for s in eight]
    for a, b in zip(one, eight, strict=True):
        assert a.keys() == b.keys()
        assert all(abs(a[c] - b[c]) < 1e-4 for c in a)


def test_loglik_scores_every_candidate_and_multi_answer_sets(tiny, items) -> None:
    _, model, tokenizer = tiny
    queries = _queries(tokenizer, items)
    scores = score_queries(model, tokenizer, queries, end_id=end_token_ids(model, tokenizer)[0], batch_size=4)
    multi = [i for i, item in enumerate(items) if item.multiple]
    assert multi, "the sample file has multi-answer items"
    for index, item in enumerate(items):
        expected = letter_sets(list(item.options)) if item.multiple else list(item.options)
        assert list(scores[index]) == expected
        assert all(v < 0 for v in scores[index].values())  # log-probabilities
        record = score_loglik(item, scores[index], best_candidate(scores[index]))
        assert record["rule"] == "loglik" and record["extracted"] == best_candidate(scores[index])
    assert letter_sets(["A", "B", "C"]) == ["A", "B", "C", "AB", "AC", "BC", "ABC"]


def test_single_letter_path_equals_the_sequence_path(tiny, items) -> None:
    """The one-forward-pass shortcut gives the same numbers as scoring each letter as a continuation."""
    _, model, tokenizer = tiny
    from medllm_core.library.evaluation.loglik import _last_logprobs

    item = next(i for i in items if not i.multiple)
    query = _queries(tokenizer, [item])[0]
    fast = score_queries(model, tokenizer, [query], end_id=0, batch_size=1)[0]
    for letter, value in fast.items():
        token = tokenizer(letter, add_special_tokens=False)["input_ids"]
        slow = _last_logprobs(model, [query.prompt_ids + token], 2, tokenizer.pad_token_id)[0, 0, token[0]]
        assert abs(float(slow) - value) < 1e-4


def test_chance_accuracy_counts_options_and_answer_sets() -> None:
    single = McqItem("1", "q", {"A": "a", "B": "b", "C": "c", "D": "d"}, frozenset("B"), "s", "x", 1)
    multi = McqItem("2", "q", {"A": "a", "B": "b", "C": "c"}, frozenset("AC"), "s", "x", 2)
    assert chance_accuracy([single]) == pytest.approx(0.25)
    assert chance_accuracy([multi]) == pytest.approx(1 / 7)
    assert chance_accuracy([]) == 0.0


def test_shots_prefer_the_same_subject_and_never_the_item_itself() -> None:
    def item(i: str, subject: str) -> McqItem:
        return McqItem(i, f"q{i}", {"A": "a", "B": "b"}, frozenset("A"), "s", subject, 1)

    dev = [item("d1", "surgery"), item("d2", "pediatrics"), item("d3", "surgery"), item("x", "pediatrics")]
    pool = shot_pool(dev, 2)
    target = item("x", "pediatrics")
    assert [s.id for s in shots_for(target, pool, 2)] == ["d2", "d1"]
    turns = conversation(target, shots_for(target, pool, 2))
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user"]
    assert turns[1]["content"] == "A"


def test_one_base_load_serves_base_and_adapters_exactly(tiny, items, tmp_path: Path) -> None:
    """Adapters switched on one base give the same answers as loading each variant on its own."""
    from peft import LoraConfig, PeftModel, get_peft_model

    folder, _, tokenizer = tiny
    from medllm_core.library.training.model_loading import load_model

    adapters = {}
    for seed, name in ((1, "sft"), (2, "dpo")):
        torch.manual_seed(seed)
        peft = get_peft_model(load_model(str(folder), torch.float32),
                              LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
        peft.save_pretrained(tmp_path / name)
        adapters[name] = str(tmp_path / name)

    ctx = SimpleNamespace(profile=SimpleNamespace(model=SimpleNamespace(name_or_path=str(folder),
                                                                        trust_remote_code=False),
                                                  resolve_path=lambda p: Path(p)),
                          precision=SimpleNamespace(dtype="fp32"), hardware=SimpleNamespace(backend="cpu"),
                          stage_decisions=lambda: [], decide=lambda *a, **k: None)
    conversations = [conversation(i, []) for i in items[:12]]
    models = VariantModels(ctx)  # type: ignore[arg-type]
    switched = {}
    for variant in (Variant("base", None), Variant("sft", adapters["sft"]), Variant("dpo", adapters["dpo"]),
                    Variant("base", None)):
        with models.use(variant) as model:
            switched.setdefault(variant.name, []).append(
                generate(model, tokenizer, conversations, max_new_tokens=8, batch_size=4))
    models.close()
    assert switched["base"][0] == switched["base"][1]  # attaching adapters never touched the base weights
    for name, path in adapters.items():
        alone = PeftModel.from_pretrained(load_model(str(folder), torch.float32), path)
        assert switched[name][0] == generate(alone, tokenizer, conversations, max_new_tokens=8, batch_size=4)
    assert switched["sft"][0] != switched["base"][0]  # the adapters really change the model
