"""One preference split shared by DPO, SimPO and KTO, so the methods compare on equal data."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from medllm_core.kernel.context import StageContext
from medllm_core.library.data import LoadedData, derive_kto_from_preference
from medllm_core.library.training.data_inputs import has_data, load_stage_rows


def split_rows(rows: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic train/held-out split: the same seed gives every method the same rows."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = int(round(len(rows) * eval_fraction))
    held_out = {i for i in order[:held]}
    return [r for i, r in enumerate(rows) if i not in held_out], [r for i, r in enumerate(rows) if i in held_out]


def rows_fingerprint(rows: list[dict]) -> str:
    digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:16]


def preference_train_rows(ctx: StageContext) -> tuple[list[dict], dict[str, Any]]:
    rows, facts = load_stage_rows(ctx, "preference", "preference")
    section = ctx.profile.data["preference"]
    train, held_out = split_rows(rows, section.eval_fraction, ctx.profile.run.seed)
    return train, {**facts, "train_rows": len(train), "held_out_rows": len(held_out),
                   "split_seed": ctx.profile.run.seed, "train_fingerprint": rows_fingerprint(train)}


def kto_train_rows(ctx: StageContext) -> tuple[list[dict], dict[str, Any]]:
    """``[data.kto]`` when given; otherwise derived from the preference split (and recorded as such)."""
    if has_data(ctx, "kto"):
        rows, facts = load_stage_rows(ctx, "kto", "kto")
        ctx.decide("kto_data_file", f"[data.kto]: {len(rows)} KTO rows from {facts['path']} ({facts['format']})",
                   rows=len(rows), source=facts["path"], format=facts["format"])
        return rows, facts
    pairs, facts = preference_train_rows(ctx)
    source = LoadedData(path=facts["path"], format=facts["format"], stage="preference", rows=pairs,
                        source_lines=[0] * len(pairs), problems=[])
    derived = derive_kto_from_preference(source)
    ctx.decide("kto_data_derived",
               f"no [data.kto] file: {len(derived.rows)} KTO rows derived from {len(pairs)} preference pairs "
               "(chosen → desirable, rejected → undesirable)",
               pairs=len(pairs), rows=len(derived.rows), source=facts["path"])
    return derived.rows, {**facts, "derived_from_preference": True, "kto_rows": len(derived.rows)}


def check_preference_inputs(ctx: StageContext) -> None:
    load_stage_rows(ctx, "preference", "preference")


def check_kto_inputs(ctx: StageContext) -> None:
    if has_data(ctx, "kto"):
        load_stage_rows(ctx, "kto", "kto")
    else:
        check_preference_inputs(ctx)

