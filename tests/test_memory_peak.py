"""bench/memory_peak.py: the replay that finds what is alive at the peak (pure Python; the recording needs CUDA)."""

from bench.memory_peak import replay, site

LIB = "/usr/lib/python3/site-packages"


def frame(path: str, line: int, name: str) -> dict:
    return {"filename": f"{LIB}/{path}", "line": line, "name": name}


def alloc(addr: int, size: int, *frames: dict) -> dict:
    return {"action": "alloc", "addr": addr, "size": size, "frames": list(frames)}


def free(addr: int, size: int) -> dict:
    return {"action": "free_completed", "addr": addr, "size": size}


def test_replay_finds_the_peak_and_what_is_alive_there() -> None:
    events = [alloc(1, 100), alloc(2, 50), free(1, 100), alloc(3, 120), alloc(4, 10), free(3, 120), free(4, 10),
              alloc(5, 60)]
    peak, at, alive = replay(events, base=1000)
    # 1000 + 100 + 50 = 1150; then 1050 + 120 + 10 = 1180 is the peak; 1050 + 60 afterwards is lower
    assert peak == 1180
    assert events[at]["addr"] == 4
    assert sorted(alive) == [2, 3, 4]


def test_replay_of_an_empty_trace_is_the_untraced_base() -> None:
    assert replay([], base=7) == (7, -1, {})


def test_site_skips_torch_plumbing_and_names_the_innermost_real_frames() -> None:
    frames = [frame("torch/nn/modules/module.py", 1773, "_call_impl"),
              frame("peft/tuners/lora/bnb.py", 540, "forward"),
              frame("torch/utils/_contextlib.py", 120, "decorate_context"),
              frame("transformers/models/qwen2/modeling_qwen2.py", 301, "forward"),
              frame("trl/trainer/sft_trainer.py", 900, "compute_loss")]
    assert site(frames) == "lora/bnb.py:540 forward < qwen2/modeling_qwen2.py:301 forward"
    assert site(frames, depth=3).endswith("trainer/sft_trainer.py:900 compute_loss")
    assert site([]) == "(no Python frame: autograd engine)"
