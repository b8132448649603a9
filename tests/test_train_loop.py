"""The shared training loop: optimizer, schedules, batching, checkpoints, resume, best/early stop."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from regpt_tiny import TINY_MODEL, common_args

from relift.io import InputError
from relift.train import loop as L


# ------------------------------------------------------------------ a toy task
class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def toy_collate(idx):
    g = torch.Generator().manual_seed(1000 + sum(idx))
    x = torch.randn(len(idx), 4, generator=g)
    return {"x": x, "y": x.sum(1, keepdim=True)}


def toy_loss(model, batch, step):
    return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"]), {"tokens": len(batch["x"])}


def toy_run(out, **kw):
    torch.manual_seed(0)
    model = Toy()
    cfg = L.TrainConfig(
        **{"max_steps": 6, "lr": 0.05, "log_every": 1, "progress": False, "device": "cpu", **kw}
    )
    res = L.train(
        model,
        toy_loss,
        L.BucketedBatches([1] * 40, 8, 0, toy_collate),
        cfg,
        out,
        eval_fn=kw.pop("_eval", None),
    )
    return model, res


# ------------------------------------------------------------------ optimizer and schedules
def test_lamb_two_steps_equal_hand_computation():
    # pytorch_optimizer's LAMB as relift sets it up: moments without bias correction, the weight
    # decay inside the update, step lr * ||w|| / (||u|| + eps) * u, no clamp of ||w||
    w0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]]) * 10  # ||w|| > 10: not clamped
    g = torch.tensor([[0.1, 0.2], [-0.3, 0.4]])
    p = torch.nn.Parameter(w0.clone())
    eps = 1e-6
    opt = L.Lamb([p], lr=0.1, betas=(0.9, 0.99), eps=eps, weight_decay=0.01)
    for _ in (1, 2):
        p.grad = g.clone()
        opt.step()
    # by hand: two identical gradients
    m1, v1 = 0.1 * g, 0.01 * g * g
    m2, v2 = 0.9 * m1 + 0.1 * g, 0.99 * v1 + 0.01 * g * g
    w1 = w0.clone()
    u1 = m1 / (v1.sqrt() + eps) + 0.01 * w1
    w1 = w1 - 0.1 * (w1.norm() / (u1.norm() + eps)) * u1
    u2 = m2 / (v2.sqrt() + eps) + 0.01 * w1
    w2 = w1 - 0.1 * (w1.norm() / (u2.norm() + eps)) * u2
    assert torch.allclose(p.detach(), w2, atol=1e-5)
    # a zero weight gets trust ratio 1
    z = torch.nn.Parameter(torch.zeros(3))
    opt = L.Lamb([z], lr=0.5)
    z.grad = torch.tensor([1.0, -1.0, 2.0])
    opt.step()
    # m = 0.1 g, sqrt(v) = sqrt(0.001) |g|: the update is 0.1 / sqrt(0.001) sign(g)
    assert torch.allclose(z.detach(), -0.5 * 0.1 / 0.001**0.5 * z.grad.sign(), atol=1e-4)


def test_schedules():
    f = L.lr_factor
    # cosine: warmup 0.25, 0.5, ..., then from 1 down to the floor, flat afterwards
    assert [f(s, "cosine", 4, 14, 0.1) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4, "cosine", 4, 14, 0.1) == pytest.approx(1.0)
    assert f(9, "cosine", 4, 14, 0.1) == pytest.approx(0.55)
    assert f(14, "cosine", 4, 14, 0.1) == pytest.approx(0.1)
    assert f(100, "cosine", 4, 14, 0.1) == pytest.approx(0.1)
    assert f(3, "inverse_sqrt", 4, 0, 0) == 1.0 and f(15, "inverse_sqrt", 4, 0, 0) == pytest.approx(
        0.5
    )
    assert f(99, "constant", 4, 0, 0) == 1.0 and f(0, "constant", 0, 0, 0) == 1.0
    # linear: warmup, then a straight line from 1 to the floor at `total`, flat afterwards
    assert f(1, "linear", 2, 12, 0.0) == 1.0 and f(2, "linear", 2, 12, 0.0) == 1.0
    assert f(7, "linear", 2, 12, 0.0) == pytest.approx(0.5)
    assert f(12, "linear", 2, 12, 0.2) == pytest.approx(0.2) == f(50, "linear", 2, 12, 0.2)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sch = L.make_scheduler(opt, L.TrainConfig(max_steps=10, lr=2.0, warmup_steps=2))
    lrs = []
    for _ in range(11):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs[0] == 1.0 and lrs[1] == 2.0 and lrs[10] == pytest.approx(0.2)


def test_bucketed_batches_are_deterministic_and_cover_the_epoch():
    lengths = np.random.default_rng(0).integers(1, 100, 103)
    bb = L.BucketedBatches(lengths, 10, seed=3, collate=list, bucket=3)
    assert len(bb) == 11
    ep0 = [bb.get(0, i) for i in range(len(bb))]
    assert sorted(sum(ep0, [])) == list(range(103))
    again = L.BucketedBatches(lengths, 10, seed=3, collate=list, bucket=3)
    assert [again.get(0, i) for i in range(len(bb))] == ep0
    assert [bb.get(1, i) for i in range(len(bb))] != ep0
    # bucketing: within a batch the lengths are close (sorted runs)
    spread = np.mean([np.ptp(lengths[b]) for b in ep0 if len(b) == 10])
    assert spread < np.ptp(lengths) / 2


def test_token_budget_batches_respect_the_budget_and_cover_the_epoch():
    lengths = np.random.default_rng(1).integers(1, 60, 500)
    bb = L.BucketedBatches(lengths, 16, seed=2, collate=list, bucket=4, max_tokens=240)
    ep0 = [bb.get(0, i) for i in range(len(bb))]
    assert sorted(sum(ep0, [])) == list(range(500))  # epoch 0: every example exactly once
    for b in ep0:  # within the budget, or a single example
        assert len(b) == 1 or len(b) * lengths[b].max() <= 240
    sizes = [len(b) for b in ep0]
    assert max(sizes) > 3 * min(sizes)  # short sequences make bigger batches
    ep1 = [bb.get(1, i) for i in range(len(bb))]  # other epochs: same count, deterministic
    assert len(ep1) == len(bb) and ep1 != ep0
    again = L.BucketedBatches(lengths, 16, seed=2, collate=list, bucket=4, max_tokens=240)
    assert [again.get(1, i) for i in range(len(bb))] == ep1
    with pytest.raises(InputError):
        L.BucketedBatches(lengths, 16, seed=2, collate=list, max_tokens=-1)


# ------------------------------------------------------------------ checkpoints, resume
def test_checkpoints_atomic_and_pruned(tmp_path):
    _, res = toy_run(tmp_path / "a", save_every=2, keep_last=2)
    ck = sorted(p.name for p in (tmp_path / "a" / "checkpoints").iterdir())
    assert ck == ["step-4", "step-6"]
    st = json.loads((tmp_path / "a" / "checkpoints" / "step-6" / "trainer_state.json").read_text())
    assert st["step"] == 6 and st["tokens"] == 48 and st["epoch"] == 1 and st["batch_index"] == 1
    assert {"random_states_0.pkl", "optimizer.bin", "scheduler.bin", "model.safetensors"} <= {
        p.name for p in (tmp_path / "a" / "checkpoints" / "step-6").iterdir()
    }
    recs = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "lr", "tokens_per_s"} <= set(recs[0])
    assert (tmp_path / "a" / "metrics.csv").read_text().startswith("step,kind,name,value")
    assert any((tmp_path / "a" / "tb").iterdir())


def test_finished_run_removes_its_checkpoints_after_export(tmp_path):
    """--no-keep-checkpoints: the checkpoints go once the export is written; metrics stay."""
    torch.manual_seed(0)
    exported = []

    def export_fn(model, res):
        assert (tmp_path / "checkpoints" / "step-6").is_dir()  # still there while exporting
        exported.append(res.step)

    cfg = L.TrainConfig(
        max_steps=6, lr=0.05, progress=False, device="cpu", save_every=2, keep_checkpoints=False
    )
    batches = L.BucketedBatches([1] * 40, 8, 0, toy_collate)
    (tmp_path / ".checkpoints.trash").mkdir(parents=True)  # left by a killed removal
    L.train(Toy(), toy_loss, batches, cfg, tmp_path, export_fn=export_fn)
    assert exported == [6]
    assert not (tmp_path / "checkpoints").exists()
    assert not (tmp_path / ".checkpoints.trash").exists()
    assert (tmp_path / "metrics.jsonl").exists()
    # without an export nothing is removed (the checkpoints are the only copy)
    L.train(Toy(), toy_loss, batches, cfg, tmp_path / "b")
    assert (tmp_path / "b" / "checkpoints" / "step-6").is_dir()


def test_default_log_interval_gives_about_40_points(tmp_path):
    # log_every 0 (the default): every max(1, steps // 40) steps, and always the last step
    for steps, want in ((6, [1, 2, 3, 4, 5, 6]), (90, [*range(2, 91, 2)])):
        toy_run(tmp_path / str(steps), max_steps=steps, log_every=0)
        recs = (tmp_path / str(steps) / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(x)["step"] for x in recs if '"train"' in x] == want
    with pytest.raises(InputError, match="log_every"):
        L.TrainConfig(log_every=-1).validate()


def test_inprocess_resume_equals_uninterrupted(tmp_path):
    full, _ = toy_run(tmp_path / "full", save_every=2, grad_accum=2, optimizer="lamb")
    with pytest.raises(SystemExit) as e:
        toy_run(tmp_path / "cut", save_every=2, grad_accum=2, optimizer="lamb", stop_after=4)
    assert e.value.code == L.STOP_EXIT_CODE
    resumed, res = toy_run(tmp_path / "cut", save_every=2, grad_accum=2, optimizer="lamb")
    assert res.resumed_from == 4 and res.step == 6
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    steps = [
        json.loads(x)["step"] for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4, 5, 6]  # no duplicated rows after the resume
    # a changed hyperparameter does not resume from a foreign checkpoint
    _, res2 = toy_run(tmp_path / "cut", save_every=2, grad_accum=2, optimizer="lamb", lr=0.01)
    assert res2.resumed_from == 0


def test_resume_between_log_records_logs_the_same_losses(tmp_path):
    # checkpoints every 2 steps, a loss record every 4: the record after a resume from step 2
    # still averages steps 1-4, as in the uninterrupted run
    kw = {"max_steps": 8, "save_every": 2, "log_every": 4}
    toy_run(tmp_path / "full", **kw)
    with pytest.raises(SystemExit):
        toy_run(tmp_path / "cut", stop_after=2, **kw)
    _, res = toy_run(tmp_path / "cut", **kw)
    assert res.resumed_from == 2

    def losses(run):
        recs = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["loss"], r["tokens"]) for r in recs]

    assert [s for s, _, _ in losses("full")] == [4, 8]
    assert losses("cut") == losses("full")


def test_best_tracking_and_early_stopping(tmp_path):
    values = iter([5.0, 3.0, 4.0, 4.5, 1.0, 0.5])

    def eval_fn(model, step):
        return {"bleu": next(values)}

    torch.manual_seed(0)
    model = Toy()
    cfg = L.TrainConfig(
        max_steps=12,
        lr=0.05,
        eval_every=2,
        best_metric="bleu",
        best_mode="min",
        patience=2,
        progress=False,
        device="cpu",
    )
    exported = {}
    res = L.train(
        model,
        toy_loss,
        L.BucketedBatches([1] * 40, 8, 0, toy_collate),
        cfg,
        tmp_path,
        eval_fn=eval_fn,
        export_fn=lambda m, r: exported.update(w=m.a.weight.detach().clone(), r=r),
    )
    assert res.stopped_early and res.step == 8 and res.best_step == 4 and res.best_value == 3.0
    best = json.loads((tmp_path / "checkpoints" / "best" / "best.json").read_text())
    assert best["step"] == 4
    from safetensors.torch import load_file

    assert torch.equal(
        exported["w"],
        load_file(str(tmp_path / "checkpoints" / "best" / "model.safetensors"))["a.weight"],
    )


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_cli_resume_after_interruption_equals_uninterrupted_run(world, tmp_path_factory):
    """Stage-1 CLI: run in a subprocess that stops after step 3's checkpoint, rerun, compare
    the final weights with an uninterrupted run."""
    from safetensors.torch import load_file

    from relift.regpt import train

    w = world
    tmp = tmp_path_factory.mktemp("resume")
    args = [
        "--stage",
        "1",
        "--tokenizer",
        str(w["tokenizer"]),
        *TINY_MODEL,
        *common_args(w),
        "--max-len",
        "24",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--max-steps",
        "6",
        "--save-every",
        "3",
        "--no-progress",
        "--negatives",
        "2",
    ]
    train.main([*args, "--work-dir", str(tmp / "full.ckpt"), "--output", str(tmp / "full")])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(L.__file__).parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    cut = [*args, "--work-dir", str(tmp / "cut.ckpt"), "--output", str(tmp / "cut")]
    r = subprocess.run(
        [sys.executable, "-m", "relift.regpt.train", *cut, "--stop-after", "3"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == L.STOP_EXIT_CODE, r.stderr[-2000:]
    assert not (tmp / "cut").exists()  # no half-written model folder
    assert (tmp / "cut.ckpt" / "checkpoints" / "step-3" / "trainer_state.json").exists()
    train.main(cut)
    info = json.loads((tmp / "cut" / "train_info.json").read_text())
    assert info["resumed_from"] == 3 and info["steps"] == 6
    a = load_file(str(tmp / "full" / "model.safetensors"))
    b = load_file(str(tmp / "cut" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    full_info = json.loads((tmp / "full" / "train_info.json").read_text())
    assert full_info["tokens"] == info["tokens"]


# ------------------------------------------------------------------ DeepSpeed ZeRO-2 on CPU
# `make install` installs the deepspeed extra and builds DeepSpeed's CPU comm op once into
# TORCH_EXTENSIONS_DIR (.venv/torch_extensions, see tests/conftest.py); these tests never skip.
ZERO2_JSON = Path(__file__).parents[1] / "config" / "zero2.json"  # the config the README names

DS_SCRIPT = r"""
import json, os, sys, time, torch
sys.path.insert(0, sys.argv[2])
from safetensors.torch import save_file
from test_train_loop import Toy, toy_collate, toy_loss
from relift.train import loop as L
out, ds_json, hang_at = sys.argv[1], sys.argv[3], int(sys.argv[4])

def loss_fn(model, batch, step):
    if step == hang_at:  # wait, mid-step, to be killed (the checkpoint of step hang_at is on disk)
        open(out + "/hanging", "w").write(str(os.getpid()))
        time.sleep(600)
    return toy_loss(model, batch, step)

def export_fn(model, res):
    save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
              out + "/final.safetensors")

torch.manual_seed(0)
m = Toy()
cfg = L.TrainConfig(max_steps=8, lr=0.05, deepspeed_config=ds_json, micro_batch_size=8,
                    save_every=4, log_every=1, progress=False)
r = L.train(m, loss_fn, L.BucketedBatches([1] * 64, 8, 0, toy_collate), cfg, out,
            export_fn=export_fn)
print("RESULT", json.dumps({"step": r.step, "tokens": r.tokens, "resumed_from": r.resumed_from}))
"""
DS_TIMEOUT = 120  # s for one run; 10-20 s on 2 busy cores, mostly importing DeepSpeed and torch
DS_HANG_AT = 4  # the killed run waits in step 5 (0-based 4), after the checkpoint of step 4


def _deepspeed_missing() -> str:
    """Why the ZeRO-2 tests cannot run here ("" = they can)."""
    import importlib.util

    fix = "run `make install` (pip install -e '.[deepspeed]', then tools/build_deepspeed_ops.py)"
    if importlib.util.find_spec("deepspeed") is None:
        return f"deepspeed is not installed; {fix}"
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR", Path.home() / ".cache" / "torch_extensions"))
    if not [*root.glob("deepspeed_shm_comm/*.so"), *root.glob("*/deepspeed_shm_comm/*.so")]:
        return (
            f"DeepSpeed's CPU comm op (deepspeed_shm_comm) is not built in {root}: its one-time "
            f"JIT build takes ~3 min, longer than these tests wait; {fix}"
        )
    return ""


def _ds_env() -> dict:
    env = {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(L.__file__).parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE"):
        env.pop(k, None)  # one process without a launcher
    return env


def _ds_start(out: Path, hang_at: int = -1) -> subprocess.Popen:
    """A ZeRO-2 run of the toy task (8 steps, checkpoints at 4 and 8) in a fresh process; its
    output goes to a file (a full pipe would stall a run that nobody reads yet)."""
    out.mkdir(parents=True, exist_ok=True)
    args = [str(out), str(Path(__file__).parent), str(ZERO2_JSON), str(hang_at)]
    log = out / f"run-{len(list(out.glob('run-*.log')))}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", DS_SCRIPT, *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=_ds_env(),
        )
    proc.log = log
    return proc


def _ds_result(proc: subprocess.Popen) -> dict:
    try:
        proc.wait(timeout=DS_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"a ZeRO-2 run of 8 toy steps took over {DS_TIMEOUT} s", pytrace=False)
    text = proc.log.read_text()
    assert proc.returncode == 0, text[-5000:]
    return json.loads(text.split("RESULT ", 1)[1].splitlines()[0])


def _metrics(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def zero2_runs(tmp_path_factory):
    """Two ZeRO-2 runs started side by side: ``full`` runs uninterrupted; ``cut`` is killed with
    SIGKILL in the middle of step 5, after its checkpoint of step 4, and is then started again."""
    why = _deepspeed_missing()
    if why:
        pytest.fail(why, pytrace=False)
    root = tmp_path_factory.mktemp("zero2")
    full, cut = root / "full", root / "cut"
    p_full, p_cut = _ds_start(full), _ds_start(cut, hang_at=DS_HANG_AT)
    try:
        t0 = time.monotonic()
        while not (cut / "hanging").exists():
            if p_cut.poll() is not None:
                pytest.fail(f"exited with {p_cut.returncode}:\n{p_cut.log.read_text()[-5000:]}")
            if time.monotonic() - t0 > DS_TIMEOUT:
                pytest.fail(f"the run to be killed reached no step 5 within {DS_TIMEOUT} s")
            time.sleep(0.1)
        ckpts_at_kill = sorted(p.name for p in (cut / "checkpoints").iterdir())
        os.kill(p_cut.pid, signal.SIGKILL)
        killed = p_cut.wait(timeout=30)
        res_full = _ds_result(p_full)
    finally:
        for p in (p_full, p_cut):
            if p.poll() is None:
                p.kill()
                p.wait()
    weights_at_kill = (cut / "final.safetensors").exists()
    res_cut = _ds_result(_ds_start(cut))
    return {
        "full": full,
        "cut": cut,
        "res_full": res_full,
        "res_cut": res_cut,
        "killed": killed,
        "ckpts_at_kill": ckpts_at_kill,
        "weights_at_kill": weights_at_kill,
    }


@pytest.mark.slow  # > 5 s: make test runs it, make test-fast does not
def test_deepspeed_zero2_on_cpu(zero2_runs):
    """ZeRO stage 2 through Accelerate's DeepSpeed plugin, on CPU (config/zero2.json, the file
    the README tells cluster users to name): the loss falls, and the checkpoints are
    DeepSpeed's (ZeRO optimizer partitions under pytorch_model/)."""
    out = zero2_runs["full"]
    assert zero2_runs["res_full"] == {"step": 8, "tokens": 64, "resumed_from": 0}
    ds = json.loads((out / "deepspeed_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == 2 and ds["train_micro_batch_size_per_gpu"] == 8
    assert ds["bf16"]["enabled"] is False  # "auto" on CPU: fp32
    for step in (4, 8):
        ck = out / "checkpoints" / f"step-{step}"
        assert json.loads((ck / "trainer_state.json").read_text())["step"] == step
        assert any((ck / "pytorch_model").glob("*zero_pp_rank_0*optim_states.pt"))
    losses = [r["loss"] for r in _metrics(out)]
    assert len(losses) == 8 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]


def test_deepspeed_zero2_resume_after_kill(zero2_runs):
    """A ZeRO-2 run killed (SIGKILL) in the middle of step 5 resumes from its checkpoint of
    step 4 and ends with exactly the weights, losses and token count of the uninterrupted run:
    the checkpoint holds DeepSpeed's fp32 partitions and Adam moments, the LR scheduler and the
    RNG states, and the data order is a function of the step."""
    from safetensors.torch import load_file

    r = zero2_runs
    assert r["killed"] == -signal.SIGKILL
    assert r["ckpts_at_kill"] == ["step-4"] and not r["weights_at_kill"]
    assert r["res_cut"] == {"step": 8, "tokens": 64, "resumed_from": 4}
    a = load_file(str(r["full"] / "final.safetensors"))
    b = load_file(str(r["cut"] / "final.safetensors"))
    assert a.keys() == b.keys() == {"a.weight", "a.bias", "b.weight", "b.bias"}
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [(x["step"], x["loss"], x["tokens"]) for x in _metrics(r["cut"])] == [
        (x["step"], x["loss"], x["tokens"]) for x in _metrics(r["full"])
    ]
