"""relift.launch: plain python for 0/1 GPU, accelerate launch with one process per GPU beyond."""

import subprocess
import sys

from relift.launch import command


def test_command_by_gpu_count():
    assert command(0, "relift.regpt.train", ["--stage", "1"]) == [
        sys.executable,
        "-m",
        "relift.regpt.train",
        "--stage",
        "1",
    ]
    assert command(1, "m", [])[1:] == ["-m", "m"]
    cmd = command(8, "relift.regpt.train", ["--stage", "2"])
    assert cmd[1:7] == ["launch", "--multi_gpu", "--num_processes", "8", "--num_machines", "1"]
    assert cmd[-4:] == ["-m", "relift.regpt.train", "--stage", "2"]


def test_runs_module_in_process_and_passes_exit_code(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "relift.launch",
            "--gpus",
            "1",
            "--",
            "relift.regpt.negatives",
            "--embeddings",
            str(tmp_path / "missing.npy"),
            "--output",
            "a",
            "--output-ids",
            "b",
            "--output-scores",
            "c",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "embeddings file does not exist" in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "relift.launch",
            "--gpus",
            "4",
            "--dry-run",
            "--",
            "relift.x",
            "--a",
        ],
        capture_output=True,
        text=True,
    )
    assert (
        r.returncode == 0
        and "launch --multi_gpu --num_processes 4" in r.stdout
        and r.stdout.strip().endswith("-m relift.x --a")
    )
