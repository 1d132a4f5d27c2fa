"""The LLM judge and medical-risk judge stages.

Both read the evaluation's answers, call the judge through ``JudgeClient``
(bounded retries, cache, concurrency limit) and write their results next to the
evaluation. Without a key a judge is skipped with the reason as evidence, or
fails when the stage's ``fail_if_unavailable`` is set (the older
``judges.required``). The key never reaches a file.

Each judge counts, per kind and per variant, the items it judged and the ones
lost to parse or transport failures (``coverage.py``). Too few usable verdicts
(``min_coverage``), a tripped circuit breaker or a stop request fail the stage,
mark its results block ``partial`` / ``failed`` with the numbers, and make it
not reusable: a resume asks again, and the response cache answers the items
that were judged already, so only the missing ones reach the endpoint. A
progress event follows every item.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from medllm_core.kernel.atomic import write_json, write_text
from medllm_core.kernel.context import StageContext
from medllm_core.kernel.graph import method_baseline
from medllm_core.kernel.stages import StageResult
from medllm_core.library.evaluation.risk_rules import prescreen
from medllm_core.library.evaluation.variants import BASE_VARIANT
from medllm_core.library.judges.client import JudgeClient, JudgeRequest, JudgeResult
from medllm_core.library.judges.config import JudgeConfig, judge_availability
from medllm_core.library.judges.coverage import JudgeStatus, Tally, judge_status, status_reason, tally
from medllm_core.library.judges.panel import agreement, combine
from medllm_core.library.judges.prompts import (
    CRITERIA,
    GRADE_VERSION,
    PAIRWISE_VERSION,
    RISK_VERSION,
    grade_check,
    grade_messages,
    pairwise_check,
    pairwise_messages,
    risk_check,
    risk_messages,
)
from medllm_core.library.judges.settings import JudgeEndpoint, JudgeStageSettings, turned_off
from medllm_core.library.report_paths import ReportPaths


def _eval_folder(ctx: StageContext) -> Path:
    return ReportPaths.of(ctx.run).eval


def _load(path: Path) -> dict[str, list[dict[str, Any]]] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def open_client(ctx: StageContext, endpoint: JudgeEndpoint | None = None) -> tuple[JudgeClient | None, str]:
    """A ready client for ``endpoint`` (default: the stage's own settings), or None and the reason it cannot run."""
    config = JudgeConfig.from_settings(endpoint or ctx.settings, cache_dir=ctx.run.cache_dir / "judge_cache")
    available, reason = judge_availability(config)
    if not available:
        return None, reason
    for secret in config.secrets:
        ctx.events.add_secret(secret)
    return JudgeClient(config), reason


def _settings(ctx: StageContext) -> JudgeStageSettings:
    return ctx.settings if isinstance(ctx.settings, JudgeStageSettings) else JudgeStageSettings()


def _not_run(ctx: StageContext, path: Path, label: str, reason: str, payload: dict[str, Any]) -> StageResult:
    write_json(path, {**payload, "status": "skipped", "reason": reason, "label": label})
    if _settings(ctx).fail_if_unavailable and "disabled" not in reason:
        return StageResult.failed(f"{label} is required but cannot run: {reason}", metrics_path=str(path))
    return StageResult.skipped(reason, metrics_path=str(path))


STOP_REASON = "stop requested (STOP file in the run folder)"


def _ask(ctx: StageContext, client: JudgeClient, requests: list[JudgeRequest]) -> list[JudgeResult]:
    """All of ``requests``, with a progress event per item and the stop request honoured between answers."""
    total = len(requests)
    ctx.progress(0, total)
    return client.map(requests, on_result=lambda done, _result: ctx.progress(done, total),
                      should_stop=ctx.stop_requested, stop_reason=STOP_REASON)


def _accounting(results: list[JudgeResult], meta: list[dict[str, Any]], kind: str | None = None) -> dict[str, Any]:
    """Counts of one judge kind (all items when ``kind`` is None): the total and one per variant."""
    chosen = [(r, m) for r, m in zip(results, meta, strict=True) if kind is None or m["kind"] == kind]
    total, per_variant = tally([r for r, _ in chosen], [m["variant"] for _, m in chosen])
    return {**total.as_dict(), "per_variant": {v: t.as_dict() for v, t in per_variant.items()}}


def _verdict(ctx: StageContext, client: JudgeClient, label: str, results: list[JudgeResult]
             ) -> tuple[JudgeStatus, str, Tally]:
    """The judge's status ("done", "partial", "failed"), the reason when not done, and its tally."""
    min_coverage = _settings(ctx).min_coverage
    total, _ = tally(results, ["all"] * len(results))
    status: JudgeStatus = judge_status(total, min_coverage)
    aborted = client.abort_reason
    if aborted and status == "done":
        # Given up on (breaker, stop): not done however many verdicts arrived before.
        status = "partial"
    reason = status_reason(label, status, total, min_coverage, aborted)
    if reason:
        ctx.log(reason, level="warning")
    return status, reason, total


def _summary(status: str, total: Tally) -> dict[str, Any]:
    return {"status": status, **{k: v for k, v in total.as_dict().items() if k != "items"}}


def _write_items(path: Path, results: list[JudgeResult], meta: list[dict[str, Any]]) -> None:
    lines = [json.dumps({**m, **r.to_record()}, ensure_ascii=False) for m, r in zip(meta, results, strict=True)]
    write_text(path, "\n".join(lines) + "\n")


def run_llm_judge(ctx: StageContext) -> StageResult:
    paths = ReportPaths.of(ctx.run)
    out = paths.judge_results
    label = "LLM judge"
    if not _settings(ctx).use_llm:
        return _not_run(ctx, out, label, f"disabled ({turned_off(ctx.stage.spec)})", {})
    responses = _load(paths.open_responses)
    if not responses:
        return _not_run(ctx, out, label, "no open-ended answers to judge (evaluation had no [data.eval_open])", {})
    settings = _settings(ctx)
    models = settings.models or [settings.model]
    clients: dict[str, JudgeClient] = {}
    for model in models:
        client, reason = open_client(ctx, replace(settings, model=model))
        if client is None:
            return _not_run(ctx, out, label, reason, {})
        clients[model] = client
    requests: list[JudgeRequest] = []
    meta: list[dict[str, Any]] = []
    for variant, items in responses.items():
        for item in items:
            requests.append(JudgeRequest(f"grade:{variant}:{item['id']}", GRADE_VERSION,
                                         grade_messages(item["prompt"], item["response"], item["reference"]),
                                         grade_check))
            meta.append({"kind": "grade", "variant": variant, "id": item["id"]})
    baseline_name = method_baseline(ctx.plan)
    baseline = responses.get(baseline_name, []) if baseline_name else []
    for variant, items in responses.items():
        if variant in (baseline_name, BASE_VARIANT) or not baseline:
            continue
        for item, base in zip(items, baseline, strict=True):
            for order, (first, second) in (("variant_first", (item, base)), ("baseline_first", (base, item))):
                requests.append(JudgeRequest(f"pair:{variant}:{item['id']}:{order}", PAIRWISE_VERSION,
                                             pairwise_messages(item["prompt"], first["response"],
                                                               second["response"]), pairwise_check))
                meta.append({"kind": "pairwise", "variant": variant, "id": item["id"], "order": order})
    ctx.log(f"LLM judge: {len(requests)} requests × {len(models)} judge model(s) ({reason})")
    per_model: dict[str, list[JudgeResult]] = {}
    for model, client in clients.items():
        with client:
            per_model[model] = _ask(ctx, client, requests)
        if client.abort_reason:
            break  # breaker or stop: the next model would meet the same endpoint, or the same stop
    stats = {model: clients[model].stats.as_dict() for model in per_model}
    stats = stats[models[0]] if len(models) == 1 else stats
    _write_items(paths.judge_items, [r for rs in per_model.values() for r in rs], meta * len(per_model))
    if len(per_model) < len(models):
        per_model = {m: per_model.get(m) or _aborted(requests, m, "not asked: an earlier judge gave up")
                     for m in models}
    results = per_model[models[0]] if len(models) == 1 else combine(per_model, meta, CRITERIA)
    client = next((c for c in clients.values() if c.abort_reason), clients[models[0]])
    status, why, total = _verdict(ctx, client, label, results)
    records = [{**m, **r.to_record()} for m, r in zip(meta, results, strict=True)]
    report = {
        "status": status, "label": label, "model": " + ".join(models), "prompt_version":
        f"{GRADE_VERSION}/{PAIRWISE_VERSION}", "criteria": list(CRITERIA),
        "single": _aggregate_grades(results, meta), "pairwise_baseline": baseline_name,
        "pairwise_vs_baseline": _aggregate_pairs(results, meta),
        **total.as_dict(), "min_coverage": _settings(ctx).min_coverage,
        "accounting": {"single": _accounting(results, meta, "grade"),
                       "pairwise": _accounting(results, meta, "pairwise")},
        "stats": stats, "endpoint": client.config.describe(),
        "reliability": _reliability(ctx, records, baseline_name),
        "judge_models": models,
    }
    if len(models) > 1:
        report["reliability"]["judges"] = agreement(per_model, meta, CRITERIA)
    if why:
        report["reason"] = why
    write_json(out, report)
    summary = _summary(status, total)
    if status != "done":
        # Cut short by a stop request: "stopped", and --resume asks the judge the rest.
        end = StageResult.stopped if ctx.stop_requested() else StageResult.failed
        return end(why, metrics_path=str(out), summary=summary, reusable=False)
    # Verdicts that failed are missing from the tables: a resume asks the judge again.
    return StageResult.done(metrics_path=str(out), summary=summary, reusable=total.judged == total.items)


def _aborted(requests: list[JudgeRequest], model: str, reason: str) -> list[JudgeResult]:
    return [JudgeResult(False, None, None, "aborted", 0, False, reason, model, r.prompt_id, r.prompt_version, 0.0)
            for r in requests]


def _reliability(ctx: StageContext, records: list[dict[str, Any]], baseline: str | None) -> dict[str, Any]:
    """Swap consistency, rubric intervals and paired tests against the baseline; judge-human agreement."""
    from medllm_core.library.judges.human_labels import human_agreement, judge_labels_from_items, load_human_labels
    from medllm_core.library.judges.reliability import judge_reliability

    block = judge_reliability(records, CRITERIA, baseline)
    if (path := human_labels_path(ctx)) is not None:
        labels = load_human_labels(str(path))
        block["human"] = {"file": str(path), **human_agreement(labels, judge_labels_from_items(records, CRITERIA))}
    return block


def human_labels_path(ctx: StageContext) -> Path | None:
    value = _settings(ctx).human_labels
    return ctx.profile.resolve_path(value) if value else None


def check_judge_inputs(ctx: StageContext) -> None:
    """A human-labels file is read before any model loads, so a bad row fails the run at once."""
    from medllm_core.library.judges.human_labels import load_human_labels

    if _settings(ctx).use_llm and (path := human_labels_path(ctx)) is not None:
        load_human_labels(str(path))


def _aggregate_grades(results: list[JudgeResult], meta: list[dict[str, Any]]) -> dict[str, Any]:
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[str, Tally] = defaultdict(Tally)
    for result, m in zip(results, meta, strict=True):
        if m["kind"] != "grade":
            continue
        counts[m["variant"]].add(result)
        if result.ok and result.parsed:
            for c in CRITERIA:
                scores[m["variant"]][c].append(float(result.parsed[c]))
    return {v: {"n": t.items, "scored": t.judged, **{k: x for k, x in t.as_dict().items() if k != "items"},
                "mean": {c: sum(x) / len(x) for c, x in scores[v].items() if x}} for v, t in counts.items()}


def _aggregate_pairs(results: list[JudgeResult], meta: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts: dict[tuple[str, str], dict[str, str | None]] = defaultdict(dict)
    for result, m in zip(results, meta, strict=True):
        if m["kind"] != "pairwise":
            continue
        winner = (result.parsed or {}).get("winner") if result.ok else None
        # Normalise to the variant's point of view: in "baseline_first" the variant is answer B.
        if winner in ("A", "B"):
            variant_won = (winner == "A") == (m["order"] == "variant_first")
            winner = "variant" if variant_won else "baseline"
        verdicts[(m["variant"], m["id"])][m["order"]] = winner
    table: dict[str, dict[str, int]] = defaultdict(lambda: {"wins": 0, "ties": 0, "losses": 0, "n": 0,
                                                            "failed": 0})
    for (variant, _), orders in verdicts.items():
        row = table[variant]
        row["n"] += 1
        first, second = orders.get("variant_first"), orders.get("baseline_first")
        if first is None or second is None:
            row["failed"] += 1
        elif first == second == "variant":
            row["wins"] += 1
        elif first == second == "baseline":
            row["losses"] += 1
        else:
            row["ties"] += 1  # a tie, or the two orders disagree (position bias)
    return dict(table)


def run_risk_judge(ctx: StageContext) -> StageResult:
    folder = _eval_folder(ctx)
    out = ReportPaths.of(ctx.run).risk_results
    responses = _load(ReportPaths.of(ctx.run).safety_responses)
    if not responses:
        write_json(out, {"prescreen": None, "llm": None})
        return StageResult.skipped("no safety answers to screen (evaluation had no [data.eval_safety])",
                                   metrics_path=str(out))
    from medllm_core.library.judges.risk_stats import risk_records_from_prescreen, risk_statistics

    baseline = method_baseline(ctx.plan)
    report: dict[str, Any] = {"prescreen": prescreen(responses)}
    # Heuristic numbers stay labelled as the pre-screen's; the statistics only add intervals and tests.
    report["prescreen"]["statistics"] = risk_statistics(risk_records_from_prescreen(responses), baseline)
    label = "LLM medical-risk judge"
    llm: dict[str, Any]
    settings = _settings(ctx)
    if not settings.use_llm:
        llm = {"status": "skipped", "reason": f"disabled ({turned_off(ctx.stage.spec)})", "label": label}
    else:
        client, reason = open_client(ctx)
        if client is None:
            llm = {"status": "skipped", "reason": reason, "label": label}
        else:
            llm = _llm_risk(ctx, client, responses, folder)
    report["llm"] = llm
    write_json(out, report)
    if llm["status"] == "skipped" and settings.use_llm and settings.fail_if_unavailable:
        return StageResult.failed(f"{label} is required but cannot run: {llm['reason']}", metrics_path=str(out))
    summary = {"prescreen_findings": len(report["prescreen"]["findings"]), "llm": llm["status"]}
    if llm["status"] in ("partial", "failed"):
        summary.update({k: llm[k] for k in ("judged", "parse_failures", "transport_failures", "coverage")})
        end = StageResult.stopped if ctx.stop_requested() else StageResult.failed
        return end(llm["reason"], metrics_path=str(out), summary=summary, reusable=False)
    return StageResult.done(metrics_path=str(out), summary=summary,
                            reusable=llm["status"] != "done" or llm["judged"] == llm["items"])


def _llm_risk(ctx: StageContext, client: JudgeClient, responses: dict[str, list[dict[str, Any]]],
              folder: Path) -> dict[str, Any]:
    requests, meta = [], []
    for variant, items in responses.items():
        for item in items:
            requests.append(JudgeRequest(f"risk:{variant}:{item['id']}", RISK_VERSION,
                                         risk_messages(item["prompt"], item["response"]), risk_check))
            meta.append({"variant": variant, "id": item["id"], "category": item["category"],
                         "response": item["response"]})
    with client:
        results = _ask(ctx, client, requests)
        stats = client.stats.as_dict()
    _write_items(ReportPaths.of(ctx.run).risk_items, results, [{k: v for k, v in m.items() if k != "response"}
                                                                for m in meta])
    per_variant: dict[str, Any] = {}
    findings = []
    grouped: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    benign: dict[str, list[bool]] = defaultdict(list)
    for result, m in zip(results, meta, strict=True):
        if not result.ok or not result.parsed:
            continue
        parsed = result.parsed
        if m["category"] == "benign":
            benign[m["variant"]].append(parsed["category"] == "over_refusal")
        else:
            grouped[m["variant"]][m["category"]].append(bool(parsed["unsafe"]))
        if parsed["unsafe"] or parsed["category"] == "over_refusal":
            findings.append({"variant": m["variant"], "id": m["id"], "category": parsed["category"],
                             "severity": parsed["severity"], "reason": parsed.get("reason", ""),
                             "response": m["response"]})
    for variant in responses:
        per_variant[variant] = {
            "unsafe_rate_by_category": {c: sum(v) / len(v) for c, v in grouped[variant].items() if v},
            "over_refusal_rate": sum(benign[variant]) / len(benign[variant]) if benign[variant] else None,
        }
    categories = sorted({c for v in grouped.values() for c in v})
    label = "LLM medical-risk judge"
    status, why, total = _verdict(ctx, client, label, results)
    accounting = _accounting(results, [{**m, "kind": "risk"} for m in meta])
    for variant, counts in accounting["per_variant"].items():
        per_variant[variant].update({k: v for k, v in counts.items() if k != "items"})
    block = {"status": status, "label": label, "model": client.config.model,
             "prompt_version": RISK_VERSION, "categories": categories, "per_variant": per_variant,
             "findings": findings, "stats": stats, "requests": len(results),
             **total.as_dict(), "min_coverage": _settings(ctx).min_coverage, "accounting": {"risk": accounting}}
    from medllm_core.library.judges.risk_stats import risk_records_from_llm, risk_statistics

    block["statistics"] = risk_statistics(
        risk_records_from_llm({**m, **r.to_record()} for m, r in zip(meta, results, strict=True)),
        method_baseline(ctx.plan))
    if why:
        block["reason"] = why
    return block
