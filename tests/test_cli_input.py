"""Bad input through the CLI: exit 2, one line on stderr, nothing launched or written."""

import errno
from pathlib import Path

import pytest

from mmkd import cli


@pytest.mark.parametrize("text", ["", "\n# nothing here\n", "- a\n- b\n"], ids=["empty", "comment", "list"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_empty_or_non_mapping_sweep_file_exits_2_in_one_line(tmp_path, capsys, text, command):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    storage = tmp_path / "runs"
    extra = ["--storage", str(storage)] if command == "run" else []
    assert cli.main(["sweep", command, str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mmkd: error: {path}: ") and err.count("\n") == 1, err
    assert not storage.exists()  # refused before any experiment folder (or Ray) exists


def test_an_unwritable_storage_path_is_one_line_and_exit_1(tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    storage = blocker / "runs"
    assert cli.main(["sweep", "run", "quickstart", "--name", "x", "--storage", str(storage)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"mmkd: error: storage: {storage}") and "Not a directory" in err, err
    assert err.count("\n") == 1


def test_a_full_disk_leaves_nothing_that_looks_like_a_sweep(tmp_path, capsys, monkeypatch):
    from mmkd.sweep import runner

    real_write = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.startswith(".config.yaml"):
            real_write(self, "name: x\nsto")  # the disk fills part-way through
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    code = cli.main(["sweep", "run", "quickstart", "--name", "x", "--storage", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and err.count("\n") == 1, err
    assert "once fixed, run the command again" in err and "sweep resume" not in err
    exp = runner.Experiment(tmp_path, "x")
    assert [p.name for p in exp.mmkd.iterdir()] == []  # no config, not even a partial temporary one
    runner._refuse_existing(exp)  # so the same `mmkd sweep run` starts it again instead of refusing


def test_a_storage_fault_raised_in_a_ray_task_is_found():
    from ray.exceptions import RayTaskError

    full = OSError(errno.ENOSPC, "No space left on device", "/runs/x/mmkd/teachers/l")
    wrapped = RayTaskError("_prepare_teacher", "Traceback ...", full).as_instanceof_cause()
    assert cli.storage_fault(wrapped) is full
    assert cli.storage_fault(RuntimeError("boom")) is None
    assert cli.storage_fault(OSError(errno.ECONNREFUSED, "refused")) is None
