"""Torch threads that follow the load (deployments.engine.core_share): a replica decoding alone
takes every core, replicas decoding together share them, idle and dead ones count for nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deployments.engine import DecodeEngine, core_share_for
from deployments.engine.core_share import CoreShare
from deployments.engine.generator import TextGenerator
from deployments.engine.model_loader import load_model
from deployments.post.prompts import build_job
from deployments.schemas import PostRequest
from deployments.settings import GenerationSettings, ModelSettings
from tests.conftest import TINY_GENERATION


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _share(folder: Path, pid: int, cores: int = 2) -> tuple[CoreShare, list[int], Clock]:
    calls: list[int] = []
    clock = Clock()
    return CoreShare(cores, calls.append, folder=folder, pid=pid, clock=clock), calls, clock


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_alone_a_replica_takes_every_core_and_shares_them_once_another_decodes(
    tmp_path: Path,
) -> None:
    # Both "replicas" need live PIDs: this process and its parent.
    content, content_threads, clock = _share(tmp_path, os.getpid())
    title, title_threads, _ = _share(tmp_path, os.getppid())
    assert content.follow(busy=True) == 2
    assert title.follow(busy=True) == 1, "two busy replicas on two cores: one thread each"
    clock.now += 0.01
    assert content.follow(busy=True) == 2, "not looked at again before RECHECK_S"
    clock.now += 1
    assert content.follow(busy=True) == 1
    title.follow(busy=False)
    assert not (tmp_path / str(os.getppid())).exists(), "an idle replica unmarks itself"
    clock.now += 1
    assert content.follow(busy=True) == 2
    assert content_threads == [2, 1, 2] and title_threads == [1]
    content.close()
    assert list(tmp_path.iterdir()) == []


def test_a_replica_that_died_marked_busy_is_not_counted(tmp_path: Path) -> None:
    (tmp_path / str(_dead_pid())).touch()
    (tmp_path / "not-a-pid").touch()
    share, calls, _ = _share(tmp_path, os.getpid(), cores=4)
    assert share.busy_replicas() == 0
    assert share.follow(busy=True) == 4 and calls == [4]


def test_never_fewer_than_one_thread(tmp_path: Path) -> None:
    share, _, _ = _share(tmp_path, os.getpid(), cores=2)
    for pid in (os.getppid(), 1):
        (tmp_path / str(pid)).touch()
    assert share.follow(busy=True) == 1


def test_threads_follow_the_load_only_on_cpu_and_when_not_fixed() -> None:
    assert core_share_for(ModelSettings(), "cpu") is not None
    assert core_share_for(ModelSettings(torch_threads=2), "cpu") is None
    assert core_share_for(ModelSettings(adaptive_threads=False), "cpu") is None
    assert core_share_for(ModelSettings(), "cuda") is None
    share = core_share_for(ModelSettings(shared_cores=6), "cpu")
    assert share is not None and share.cores == 6


def test_the_engine_marks_itself_busy_while_it_decodes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_settings = ModelSettings(model=str(tiny_model_dir), device="cpu")
    generator = TextGenerator(
        load_model(model_settings), GenerationSettings(**TINY_GENERATION), model_settings
    )
    seen_busy: list[int] = []
    share = CoreShare(2, lambda threads: None, folder=tmp_path)

    def record(threads: int) -> None:
        seen_busy.append(share.busy_replicas())

    share._set_threads = record  # what the replica saw when it chose its threads
    engine = DecodeEngine(generator, max_rows=2, core_share=share)
    try:
        job = build_job("content", PostRequest(topic="Code review"), 1, GenerationSettings())
        job = job.model_copy(update={"max_new_tokens": 6, "min_new_tokens": 6})
        assert engine.submit([job])[0].result(timeout=60).new_tokens == 6
        assert seen_busy == [1]
        assert share.threads == 2
        assert list(tmp_path.iterdir()) == [], "idle again once its batch is empty"
    finally:
        engine.close()
