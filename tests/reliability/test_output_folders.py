"""Writing failures (read-only, missing, full disk, permission) are found before long work starts, end in one line
and exit 2, and leave the output folder as it was; an earlier run is never silently replaced."""

from __future__ import annotations

import errno
import os

import pytest

from edgeskd._folders import check_output_folder, probe_writable, publish_folder
from edgeskd.errors import OutputError

LITE0 = ("--teacher", "tf_efficientnet_lite0")


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_output_error_is_an_oserror_and_an_edgeskd_error():
    from edgeskd.errors import EdgeskdError

    assert issubclass(OutputError, OSError) and issubclass(OutputError, EdgeskdError)


def test_probe_names_a_folder_that_cannot_be_created(blocked_dir):
    with pytest.raises(OutputError, match="cannot create .*a-file/out"):
        probe_writable(blocked_dir)


def test_probe_on_a_full_disk_is_one_error_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("edgeskd._folders.os.write", _enospc)
    with pytest.raises(OutputError, match="No space left on device"):
        probe_writable(tmp_path / "new" / "out")
    assert list(tmp_path.iterdir()) == []  # the folders made for the probe are gone again


def test_probe_refuses_a_read_only_folder(tmp_path, monkeypatch):
    # root ignores chmod, so the read-only mount is simulated where the probe file is created
    def erofs(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr("edgeskd._folders.tempfile.mkstemp", erofs)
    with pytest.raises(OutputError, match="Read-only file system"):
        probe_writable(tmp_path)


def test_publish_folder_failure_leaves_the_earlier_result(tmp_path):
    final = tmp_path / "sel"
    final.mkdir()
    (final / "old.txt").write_text("earlier run")
    with pytest.raises(OSError), publish_folder(final, overwrite=True) as building:
        (building / "model_a.safetensors").write_text("half")
        _enospc()
    assert [p.name for p in tmp_path.iterdir()] == ["sel"] and (final / "old.txt").read_text() == "earlier run"
    with publish_folder(final, overwrite=True) as building:
        (building / "new.txt").write_text("new run")
    assert [p.name for p in final.iterdir()] == ["new.txt"] and [p.name for p in tmp_path.iterdir()] == ["sel"]


def test_check_output_folder_names_the_flag_to_use(tmp_path):
    (tmp_path / "x").write_text("earlier")
    with pytest.raises(OutputError, match="--resume to continue that run or --overwrite"):
        check_output_folder(tmp_path, resume=False)
    with pytest.raises(OutputError, match="use --overwrite to replace it"):
        check_output_folder(tmp_path)
    assert check_output_folder(tmp_path, overwrite=True) == tmp_path


def test_select_into_an_unwritable_folder(run_cli, blocked_dir):
    _, _, err = run_cli("select", *LITE0, "--out", blocked_dir)
    assert "a-file/out" in err


def test_select_on_a_full_disk_leaves_no_partial_selection(run_cli, tmp_path, monkeypatch):
    import edgeskd.selection.io as sio

    real, calls = sio.save_tensors, []

    def second_write_fails(path, *args, **kwargs):  # model_a is written, model_b hits a full disk
        calls.append(path)
        if len(calls) == 2:
            _enospc()
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sio, "save_tensors", second_write_fails)
    out = tmp_path / "sel"
    _, _, err = run_cli("select", *LITE0, "--resolution", "64", "--out", out)
    assert "No space left on device" in err and len(calls) == 2
    assert list(tmp_path.iterdir()) == []  # no model_a.safetensors without model_b and selection.json


def test_select_refuses_an_earlier_selection_unless_overwrite(run_cli, tmp_path):
    out = tmp_path / "sel"
    out.mkdir()
    (out / "model_a.safetensors").write_text("earlier run")
    _, _, err = run_cli("select", *LITE0, "--out", out)
    assert "--overwrite" in err and (out / "model_a.safetensors").read_text() == "earlier run"
    run_cli("select", *LITE0, "--resolution", "64", "--out", out, "--overwrite", "--json", expect=0)
    assert sorted(p.name for p in out.iterdir()) == ["model_a.safetensors", "model_b.safetensors", "selection.json"]


def test_train_into_an_unwritable_folder_fails_before_training(run_cli, blocked_dir, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the output folder was checked")

    monkeypatch.setattr("edgeskd.data.load_dataset", no_training)
    _, _, err = run_cli("train", "--data", "chest-xray-samples", *LITE0, "--out", blocked_dir)
    assert "a-file/out" in err


def test_train_refuses_an_earlier_run_and_names_resume_and_overwrite(run_cli, tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    _, _, err = run_cli("train", "--data", "chest-xray-samples", *LITE0, "--out", tmp_path)
    assert "--resume" in err and "--overwrite" in err
    _, _, err = run_cli("train", "--data", "chest-xray-samples", *LITE0, "--out", tmp_path, "--resume", "--overwrite")
    assert "choose one" in err
    assert (tmp_path / "metrics.json").read_text() == "{}"


def test_export_into_an_unwritable_folder_fails_before_export(run_cli, blocked_dir, tmp_path):
    _, _, err = run_cli("export", tmp_path / "never-read.safetensors", "--out", blocked_dir)
    assert "a-file" in err


def test_search_into_an_unwritable_run_folder(run_cli, blocked_dir):
    _, _, err = run_cli("search", "--run-dir", blocked_dir, "--trials", "1")
    assert "a-file/out" in err


def test_oserror_escaping_a_command_is_one_line(run_cli, monkeypatch):
    import edgeskd.cli.doctor as doctor

    def broken(args):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), "/some/file")

    monkeypatch.setattr(doctor, "run", broken)
    from edgeskd.cli import build_parser

    monkeypatch.setattr("edgeskd.cli.build_parser", lambda: _with_func(build_parser(), "doctor", broken))
    _, _, err = run_cli("doctor")
    assert "Permission denied: /some/file" in err


def _with_func(parser, name, func):
    parser._subparsers._group_actions[0].choices[name].set_defaults(func=func)
    return parser


def test_train_overwrite_replaces_the_earlier_run_only_once_inputs_load(run_cli, tmp_path):
    pytest.importorskip("edgeskd.selection")
    out = tmp_path / "run"
    out.mkdir()
    (out / "stale.txt").write_text("earlier run")
    # a dataset that cannot be read: the earlier run must survive --overwrite
    run_cli("train", "--data", tmp_path / "no-such-data", *LITE0, "--out", out, "--overwrite")
    assert (out / "stale.txt").read_text() == "earlier run"
    common = ("--data", "chest-xray-samples", *LITE0, "--depth", "0.25", "--width", "0.25", "--resolution", "32",
              "--epochs-skd", "1", "--epochs-finetune", "0", "--batch-size", "8", "--method", "single-ws",
              "--no-progress", "--json")
    run_cli("train", *common, "--out", out, "--overwrite", expect=0)
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()
