"""Build-once artefacts (mmkd.atomic): complete ones reused, partial or damaged ones rebuilt, a killed
build never leaves anything that looks whole, concurrent builders build once."""

import multiprocessing
import time

import pytest
import torch
from safetensors.torch import save_file

from mmkd.atomic import build_dir_once, build_file_once, model_dir_complete, safetensors_complete

COMPLETE = model_dir_complete("done.json")


def _build(log):
    def build(work):
        with log.open("a") as f:
            f.write("built\n")
        save_file({"w": torch.zeros(4)}, str(work / "model.safetensors"))
        (work / "done.json").write_text("{}")

    return build


def _builds(log):
    return log.read_text().count("built") if log.exists() else 0


def test_built_once_then_found(tmp_path):
    final, log = tmp_path / "a", tmp_path / "log"
    assert build_dir_once(final, _build(log), COMPLETE) == final
    assert build_dir_once(final, _build(log), COMPLETE) == final
    assert _builds(log) == 1 and COMPLETE(final)
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


@pytest.mark.parametrize("damage", ["no_marker", "truncated_weights", "no_weights"])
def test_a_partial_or_damaged_artefact_is_rebuilt_and_said(tmp_path, capsys, damage):
    final, log = tmp_path / "a", tmp_path / "log"
    build_dir_once(final, _build(log), COMPLETE)
    weights = final / "model.safetensors"
    if damage == "no_marker":
        (final / "done.json").unlink()
    elif damage == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[:-3])
    else:
        weights.unlink()
    assert not COMPLETE(final)
    build_dir_once(final, _build(log), COMPLETE)
    assert _builds(log) == 2 and COMPLETE(final)
    assert "incomplete or damaged" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and "lock" not in p.name] == []


def test_a_failed_build_leaves_nothing_that_looks_whole(tmp_path):
    final = tmp_path / "a"

    def dies(work):
        (work / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dir_once(final, dies, COMPLETE)
    assert not final.exists()
    assert [p.name for p in tmp_path.iterdir()] == [".a.lock"]


def test_a_resumable_build_finds_what_the_killed_one_left(tmp_path):
    final, seen = tmp_path / "a", []

    def dies(work):
        (work / "step").write_text("7")
        raise KeyboardInterrupt

    def resumes(work):
        seen.append((work / "step").read_text())
        _build(tmp_path / "log")(work)

    with pytest.raises(KeyboardInterrupt):
        build_dir_once(final, dies, COMPLETE, resumable=True)
    assert not final.exists()
    build_dir_once(final, resumes, COMPLETE, resumable=True)
    assert seen == ["7"] and COMPLETE(final) and not (final.parent / ".a.partial").exists()


def _slow_build(final, log):
    def build(work):
        time.sleep(0.5)
        _build(log)(work)

    build_dir_once(final, build, COMPLETE)


def test_concurrent_builders_build_once(tmp_path):
    final, log = tmp_path / "a", tmp_path / "log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_slow_build, args=(final, log)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert _builds(log) == 1 and COMPLETE(final)


def test_a_half_written_file_is_rebuilt(tmp_path, capsys):
    path = tmp_path / "c.safetensors"

    def write(tmp):
        save_file({"x": torch.arange(100.0)}, str(tmp))

    build_file_once(path, write, safetensors_complete)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert not safetensors_complete(path)
    build_file_once(path, write, safetensors_complete)
    assert path.read_bytes() == whole
    assert "incomplete or damaged" in capsys.readouterr().err


def test_safetensors_complete_reads_the_header(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"a": torch.ones(3, 5), "b": torch.zeros(2)}, str(path))
    assert safetensors_complete(path)
    data = path.read_bytes()
    for bad in (data[:-1], data + b"\0", data[:20], b"", b"not a safetensors file at all"):
        path.write_bytes(bad)
        assert not safetensors_complete(path)
    assert not safetensors_complete(tmp_path / "missing.safetensors")
