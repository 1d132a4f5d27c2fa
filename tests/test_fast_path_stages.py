"""The stages' fast path end to end on the CPU: the planner is told it has a CUDA card, so SFT packs
padding-free rows through the varlen attention interface (its exact dense fallback on CPU) and the
preference stages run their padded batches as packed rows. Same TRL trainers, same checks as on a GPU."""

from __future__ import annotations

import json

import pytest

from medllm_core.library.training import fast_path, speed
from medllm_core.testing import run_pipeline


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    import medllm_core.library.training.padding_free as pf

    mp = pytest.MonkeyPatch()
    mp.setattr(fast_path, "stage_hardware", lambda ctx: speed.SpeedHardware("cuda", 80.0, 9, "pretend H100"))
    mp.setattr(pf, "varlen_usable", lambda: (True, "pretend CUDA for the CPU test"))
    try:
        yield run_pipeline(tmp_path_factory.mktemp("fast"), only=["sft", "dpo", "simpo", "kto"],
                           overrides={**{f"stages.{m}.max_steps": 4 for m in ("dpo", "simpo", "kto")},
                                      # 4 examples per step and rows that may be shorter than max_length:
                                      # the packed step can then match the profile's (see the SFT test)
                                      "stages.sft.max_length": 640, "stages.sft.gradient_accumulation_steps": 4,
                                      "stages.sft.max_steps": 40})
    finally:
        mp.undo()


def metrics(run, name: str) -> dict:
    return json.loads(open(run.stage_result(name).metrics_path, encoding="utf-8").read())


def test_every_training_stage_trains_on_the_fast_path(fast_run):
    for name in ("sft", "dpo", "simpo", "kto"):
        assert fast_run.stage_result(name).status == "trained", (name, fast_run.stage_result(name).reason)


def test_sft_packs_and_records_why(fast_run):
    m = metrics(fast_run, "sft")
    assert m["final_settings"]["packing"] is True
    assert m["final_settings"]["attention"] == "medllm_varlen"
    keys = {d["kind"] for d in m["decisions"]}
    packing = next(d for d in m["decisions"] if d["kind"] == "speed_packing")
    # the data's real token lengths size the accumulation (tiny model's conversations: tens of tokens each)
    assert "tokens per optimizer step" in packing["summary"]
    wanted = int(packing["summary"].split("profile's ~")[1].split(" ")[0].replace(",", ""))
    planned = int(packing["summary"].split(": ~")[1].split(" ")[0].replace(",", ""))
    # 1 × 4 examples (~820 tokens) per step: rows of 640 give 640 or 1,280; rows as short as the longest
    # conversation (265 tokens) allow a split within 10%, and TRL packs to that length
    assert wanted > 400 and abs(planned - wanted) <= 0.10 * wanted, packing["summary"]
    settings = m["final_settings"]
    assert 265 <= settings["packed_length"] < settings["max_length"] == 640, settings
    # warm-up is told apart from the steady rate (a short stage on a GPU is dominated by its first step)
    assert 0 < m["first_step_s"] < m["wall_time_s"] and m["tokens_per_second_after_first_step"] > 0
    assert {"speed_attention", "speed_packing", "speed_activation_checkpointing", "speed_memory_plan"} <= keys


def test_preference_stages_run_padding_free_with_the_sft_model_as_reference(fast_run):
    for name in ("dpo", "kto"):
        m = metrics(fast_run, name)
        assert m["final_settings"]["padding_free"] is True
        # policy == reference at the first step: the packed reference forward matches the policy exactly
        first = m["rewards_first_step"]
        assert all(v == 0 for k, v in first.items() if k in ("rewards/chosen", "rewards/margins")), first
    assert metrics(fast_run, "simpo")["final_settings"]["padding_free"] is True
