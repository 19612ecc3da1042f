"""Bad input through the CLI: exit 2, one line on stderr, nothing launched or written."""

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
