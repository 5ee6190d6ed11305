"""Real multi-process training on this machine: 2 and 4 processes on localhost (gloo CPU
collectives, forced CPU devices, a free coordinator port) run ``experiments.adding_problem
--distributed`` and are compared with the one-process run of the same seed and global batch.

Every process is started in its own session and killed with its group when a test ends,
passes or fails; every wait is bounded. Run as a script, this file is the training command with
a hook that kills process 1 after a checkpoint (the resume test)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = [
    "--seq-len", "6", "--hidden", "4", "--batch-size", "8", "--eval-size", "16",
    "--lr", "1e-2", "--log-every", "5", "--eval-every", "10", "--no-progress",
]  # fmt: skip
RUN = ["--steps", "20", "--checkpoint-every", "8", "--keep", "3", *TINY]
# Seconds any one launch may take, start to finish (a loaded 2-core machine: ~1-2 min).
LAUNCH_TIMEOUT = 420
KILL_AFTER_ENV = "LSTM_JAX_TEST_KILL_AFTER_CHECKPOINT"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(devices: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        PYTHONPATH=os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])]),
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


class Launch:
    """Processes started together; on leaving, any still running is killed with its group."""

    def __init__(self, logs: str) -> None:
        self.logs, self.procs, self.files = logs, [], []

    def start(self, argv, env, name):
        os.makedirs(self.logs, exist_ok=True)
        path = os.path.join(self.logs, f"{name}.log")
        f = open(path, "w")
        self.files.append(path)
        self.procs.append(
            subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        f.close()
        return self.procs[-1]

    def output(self, i: int) -> str:
        with open(self.files[i]) as f:
            return f.read()

    def tails(self) -> str:
        return "\n".join(
            f"--- {path}:\n" + "\n".join(self.output(i).splitlines()[-15:])
            for i, path in enumerate(self.files)
        )

    def wait(self, deadline: float) -> list[int]:
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout=max(deadline - time.monotonic(), 0.1)))
            except subprocess.TimeoutExpired:
                pytest.fail(f"a process ran past its time limit\n{self.tails()}")
        return codes

    def kill(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=30)

    def __enter__(self) -> Launch:
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            self.kill(p)


def distributed_argv(out, n, i, port, *, script=("-m", "experiments.adding_problem"), extra=()):
    return [
        sys.executable, *script, *RUN, *extra, "--out", out, "--distributed",
        "--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n), "--process-id", str(i),
        "--distributed-timeout", "120",
    ]  # fmt: skip


def run_processes(out, n, devices, logs, *, script=("-m", "experiments.adding_problem"), env=()):
    """Runs the training in ``n`` processes of ``devices`` devices each; their outputs."""
    port = free_port()
    with Launch(logs) as launch:
        for i in range(n):
            launch.start(
                distributed_argv(out, n, i, port, script=script),
                environment(devices, **dict(env)),
                f"process{i}",
            )
        codes = launch.wait(time.monotonic() + LAUNCH_TIMEOUT)
        assert codes == [0] * n, launch.tails()
        return [launch.output(i) for i in range(n)]


def run_one_process(out, devices, logs):
    with Launch(logs) as launch:
        launch.start(
            [sys.executable, "-m", "experiments.adding_problem", *RUN, "--out", out],
            environment(devices),
            "single",
        )
        assert launch.wait(time.monotonic() + LAUNCH_TIMEOUT) == [0], launch.tails()


def read_log(out):
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def without_timing(records):
    timing = ("time", "steps_per_s", "examples_per_s")
    return [{k: v for k, v in r.items() if k not in timing} for r in records]


def read_metrics(out):
    with open(os.path.join(out, "metrics.json")) as f:
        saved = json.load(f)
    del saved["config"]["out"]
    return saved


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{layout: (out, outputs)}`` for 1 x 4 devices, 2 x 2 and 4 x 1, run once per module."""
    base = tmp_path_factory.mktemp("multiprocess")
    done = {}
    out = str(base / "1x4")
    run_one_process(out, 4, str(base / "logs_1x4"))
    done["1x4"] = (out, None)
    for n, devices in ((2, 2), (4, 1)):
        name = f"{n}x{devices}"
        out = str(base / name)
        done[name] = (out, run_processes(out, n, devices, str(base / f"logs_{name}")))
    return done


def test_two_and_four_processes_train_on_the_batches_of_one_process(runs):
    one = without_timing(read_log(runs["1x4"][0]))
    steps = [(r["step"], r["split"]) for r in one]
    assert steps == [(5, "train"), (10, "train"), (10, "eval"), (15, "train"), (20, "train"),
                     (20, "eval")]  # fmt: skip
    for name in ("2x2", "4x1"):
        out, outputs = runs[name]
        log = without_timing(read_log(out))
        # Written once, by process 0: one record per step and split.
        assert [(r["step"], r["split"]) for r in log] == steps
        for mine, theirs in zip(log, one, strict=True):
            assert mine.keys() == theirs.keys()
            for key in mine:
                if key not in ("step", "split"):
                    np.testing.assert_allclose(mine[key], theirs[key], rtol=2e-5, atol=1e-7)
        metrics, reference = read_metrics(out), read_metrics(runs["1x4"][0])
        assert metrics["devices"] == reference["devices"] == 4
        np.testing.assert_allclose(
            metrics["metrics"]["test_mse"], reference["metrics"]["test_mse"], rtol=2e-5
        )
        # Only process 0 prints the summary (and writes the files).
        assert "adding T=6 lstm seed=0" in outputs[0]
        assert all("adding T=6" not in text for text in outputs[1:])
        assert sorted(os.listdir(out)) == ["checkpoints", "curves.png", "log.jsonl", "metrics.json"]


def test_killing_one_process_and_restarting_all_resumes_from_the_last_checkpoint(runs, tmp_path):
    out, logs = str(tmp_path / "run"), str(tmp_path / "logs")
    port = free_port()
    script = (os.path.abspath(__file__),)
    with Launch(logs) as launch:
        for i in range(2):
            launch.start(
                distributed_argv(out, 2, i, port, script=script),
                environment(2, **{KILL_AFTER_ENV: "8"}),
                f"killed{i}",
            )
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        try:
            code = launch.procs[1].wait(timeout=LAUNCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"process 1 was not killed in time\n{launch.tails()}")
        assert code == -signal.SIGKILL, launch.tails()
        # Process 0 cannot go on without process 1: stop it too (it may be stuck or aborting).
        launch.kill(launch.procs[0])
        assert time.monotonic() < deadline
    checkpoints = os.path.join(out, "checkpoints")
    assert sorted(os.listdir(checkpoints)) == ["8"], os.listdir(checkpoints)
    before = read_log(out)
    assert [(r["step"], r["split"]) for r in before] == [(5, "train")]

    run_processes(out, 2, 2, str(tmp_path / "logs_restarted"))
    after = read_log(out)
    # Resumed at step 8: the record of step 5 is the killed run's own (not written again).
    assert after[0] == before[0]
    assert without_timing(after) == without_timing(read_log(runs["2x2"][0]))
    assert read_metrics(out) == read_metrics(runs["2x2"][0])


def test_a_coordinator_that_never_answers_times_out_naming_its_address(tmp_path):
    from lstm_jax.training import distributed

    port = free_port()  # nobody listens there
    argv = distributed_argv(str(tmp_path / "run"), 2, 1, port)
    argv[argv.index("--distributed-timeout") + 1] = "3"
    started = time.monotonic()
    with Launch(str(tmp_path / "logs")) as launch:
        launch.start(argv, environment(1), "alone")
        assert launch.wait(time.monotonic() + 120) == [distributed.JOIN_TIMEOUT_EXIT]
        text = launch.output(0)
    assert (
        f"could not join the multi-process run at coordinator 127.0.0.1:{port} within 3 s" in text
    )
    assert "process 1 of 2" in text
    assert time.monotonic() - started < 120


def test_processes_started_with_different_counts_fail_fast_with_a_message(tmp_path):
    port, out = free_port(), str(tmp_path / "run")
    with Launch(str(tmp_path / "logs")) as launch:
        first = distributed_argv(out, 2, 0, port)
        second = distributed_argv(out, 3, 1, port)
        launch.start(first, environment(1), "count2")
        launch.start(second, environment(1), "count3")
        codes = launch.wait(time.monotonic() + 180)
        texts = [launch.output(0), launch.output(1)]
    assert codes == [1, 1], texts
    assert "process 1 was started with --num-processes 3, process 0 with 2" in texts[0]
    assert "process 0 was started with --num-processes 2, process 1 with 3" in texts[1]
    assert not os.path.exists(os.path.join(out, "log.jsonl"))


def _main_killed_after_checkpoint() -> None:
    """The training command, with process 1 killing itself (SIGKILL) once the checkpoint of
    step ``$LSTM_JAX_TEST_KILL_AFTER_CHECKPOINT`` is completely on disk."""
    sys.path.insert(0, ROOT)
    import jax

    from experiments import adding_problem, common
    from lstm_jax import training
    from lstm_jax.training.checkpoints import FILES

    kill_after = int(os.environ[KILL_AFTER_ENV])

    class KilledAfterCheckpoint(training.Checkpointer):
        def save(self, state, **kw):
            step = super().save(state, **kw)
            if step == kill_after and jax.process_index() == 1:
                listing = os.path.join(self.directory, str(step), FILES)
                deadline = time.monotonic() + 120
                while not os.path.exists(listing) and time.monotonic() < deadline:
                    time.sleep(0.05)  # process 0 writes the file list once the step is saved
                os.kill(os.getpid(), signal.SIGKILL)
            return step

    training.Checkpointer = KilledAfterCheckpoint
    common.cli(adding_problem.main)


if __name__ == "__main__":
    _main_killed_after_checkpoint()
