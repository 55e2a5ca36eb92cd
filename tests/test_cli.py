"""The CLI: in-process generation on the tiny model, and reading request files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployments.cli import main, read_requests
from tests.conftest import TINY_GENERATION


def test_generate_in_process_prints_a_post(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINKEDIN_POSTS_MODEL__MODEL", str(tiny_model_dir))
    monkeypatch.setenv("LINKEDIN_POSTS_GENERATION", json.dumps(TINY_GENERATION))
    argv = ["generate", "Why code review makes teams faster", "--hashtags", "4", "--seed", "1"]
    assert main([*argv, "--json", "--cta", "Thoughts?"]) == 0
    post = json.loads(capsys.readouterr().out)
    assert len(post["hashtags"]) == 4
    assert post["content"].endswith("Thoughts?")
    assert post["metadata"]["model"] == str(tiny_model_dir)

    assert main(argv) == 0
    printed = capsys.readouterr().out.strip()
    assert len(printed.splitlines()[-1].split()) == 4, "plain output ends with the hashtag line"
    assert all(tag.startswith("#") for tag in printed.splitlines()[-1].split())


def test_generate_stream_shows_the_body_as_it_is_written(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LINKEDIN_POSTS_MODEL__MODEL", str(tiny_model_dir))
    monkeypatch.setenv("LINKEDIN_POSTS_GENERATION", json.dumps(TINY_GENERATION))
    argv = ["generate", "Streaming from the command line", "--seed", "2", "--json"]
    assert main([*argv, "--stream"]) == 0
    streamed = capsys.readouterr()
    assert main(argv) == 0
    plain = capsys.readouterr()
    # The same post; the first body as written went to stderr too (beside the loading bars).
    assert json.loads(streamed.out)["text"] == json.loads(plain.out)["text"]
    assert len(streamed.err) > len(plain.err) + 100


def test_invalid_request_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "ab"]) == 2
    assert "topic" in capsys.readouterr().err


def test_read_requests_json_list_and_lines(tmp_path: Path) -> None:
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([{"topic": "One topic"}, {"topic": "Two topic", "seed": 2}]))
    as_lines = tmp_path / "lines.jsonl"
    as_lines.write_text('{"topic": "One topic"}\n\n{"topic": "Two topic", "seed": 2}\n')
    assert read_requests(str(as_list)) == read_requests(str(as_lines))
    assert [r.seed for r in read_requests(str(as_list))] == [None, 2]
