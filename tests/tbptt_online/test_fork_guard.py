"""A child forked from a process that ran torch on two threads builds and runs a forecaster (libgomp's
wait for good otherwise: a new user's ``multiprocessing`` pool, session 49); a process that built no
forecaster is left alone."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FORKED_POOL = textwrap.dedent(
    """
    import faulthandler, multiprocessing as mp
    import torch
    from tbptt_online import Forecaster, ForecasterConfig

    def child(state):
        faulthandler.dump_traceback_later(60, exit=True)  # (a hung child ends, and says where)
        f = Forecaster.from_state_dict(state)
        return f.observe("a", 1.0).forecast_next.mean, torch.get_num_threads()

    if __name__ == "__main__":
        torch.set_num_threads(2)
        f = Forecaster(ForecasterConfig(hidden_size=4))
        for i in range(30):
            f.observe_many([(f"s{j}", float(i % 7 + j)) for j in range(50)])
        x = torch.randn(1500, 1500)
        (x @ x).sum()  # libgomp's threads busy in the parent
        with mp.get_context("fork").Pool(2) as pool:
            print(pool.map_async(child, [f.state_dict()] * 2).get(timeout=90), torch.get_num_threads())
    """
)


def test_a_forked_child_builds_and_runs_a_forecaster_on_one_thread(tmp_path: Path) -> None:
    script = tmp_path / "pool.py"
    script.write_text(FORKED_POOL)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (first, threads), (second, _) = ast.literal_eval(done.stdout.strip().rsplit(" ", 1)[0])
    assert first == second and threads == 1
    assert done.stdout.strip().endswith(" 2")  # the parent keeps its two threads


def test_a_fork_of_a_process_that_built_no_forecaster_is_left_as_torch_leaves_it() -> None:
    # a review (session 49): registered when the package was imported, the hook set the children of a program
    # that imported only the client (and set 4 torch threads of its own) to one thread
    code = textwrap.dedent(
        """
        import os, sys
        import tbptt_online.client
        assert "torch" not in sys.modules
        pid = os.fork()
        if pid == 0:
            os._exit(3 if "torch" in sys.modules else 0)
        first = os.waitpid(pid, 0)[1] >> 8
        import torch
        import tbptt_online
        torch.set_num_threads(3)
        pid = os.fork()
        if pid == 0:
            os._exit(torch.get_num_threads())
        print(first, os.waitpid(pid, 0)[1] >> 8)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "0 3"  # no torch loaded; then 3 threads kept, no Forecaster built


def test_a_process_whose_forecaster_came_from_a_pickle_guards_its_forks(tmp_path: Path) -> None:
    # a review (session 49): the guard was registered by ``__init__`` alone, which unpickling does not run
    import pickle

    from tbptt_online import Forecaster, ForecasterConfig

    f = Forecaster(ForecasterConfig(hidden_size=4))
    f.observe("a", 1.0)
    saved = tmp_path / "f.pkl"
    saved.write_bytes(pickle.dumps(f))
    code = textwrap.dedent(
        f"""
        import os, pickle
        import torch
        torch.set_num_threads(3)
        f = pickle.loads(open({str(saved)!r}, "rb").read())
        pid = os.fork()
        if pid == 0:
            os._exit(torch.get_num_threads())
        print(os.waitpid(pid, 0)[1] >> 8)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1"
