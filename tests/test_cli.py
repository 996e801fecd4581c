import dataclasses
import os
import subprocess
import sys

import pytest

from selfsup.cli import build_parser, parse_options, run
from selfsup.config import ConfigError, PretrainConfig, from_dict


def help_text(*command):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--help"])


def test_every_pretrain_option_is_on_the_command_line_with_help(capsys):
    help_text("pretrain")
    text = capsys.readouterr().out
    for f in dataclasses.fields(PretrainConfig):
        if f.metadata.get("cli", True):
            assert "--" + f.name.replace("_", "-") in text, f.name
            assert f.metadata["help"][:20] in " ".join(text.split())


@pytest.mark.parametrize("command", [[], ["evaluate"], ["embed"], ["export"], ["datasets"], ["methods"]])
def test_help_of_each_command(command, capsys):
    help_text(*command)
    out = capsys.readouterr().out
    assert "usage: selfsup" in out
    for action in build_parser()._actions:
        if command and hasattr(action, "choices") and isinstance(action.choices, dict):
            sub = action.choices[command[0]]
            for option in sub._actions:
                if option.help and option.option_strings:
                    assert option.option_strings[-1] in out


def test_lists(capsys):
    run(["datasets"])
    out = capsys.readouterr().out
    assert "digits" in out and "image" in out and "1797" in out and "yes" in out
    run(["methods"])
    out = capsys.readouterr().out
    assert "simclr" in out and "byol" in out and "2020" in out and "Grill" in out
    assert "2 views + EMA target" in out and "2 views + labels" in out and "ViT backbone" in out


@pytest.mark.parametrize("values, message", [
    ({"data": "digits", "method": "nope"}, "method='nope': expected one of"),
    ({"data": "digits", "batch_size": 0}, "batch_size=0: expected >= 2"),
    ({"data": "digits", "lr": -0.1}, "lr=-0.1: expected > 0"),
    ({"data": "digits", "crop_min_scale": 1.5}, "crop_min_scale=1.5: expected in (0, 1]"),
    ({"data": "digits", "epochs": "ten"}, "epochs='ten': expected an integer"),
    ({"data": "digits", "colour": 1}, "unknown option 'colour'"),
    ({"method": "simclr"}, "data=None: is required"),
])
def test_bad_config_names_field_value_and_rule(values, message):
    with pytest.raises(ConfigError) as error:
        from_dict(values)
    assert message in str(error.value)


def test_bad_input_is_one_line_on_stderr(tmp_path):
    result = subprocess.run([sys.executable, "-m", "selfsup.cli", "pretrain", "--data", "digits",
                             "--method", "simclr", "--lr", "-1", "--out", str(tmp_path / "r")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "selfsup: error: lr=-1.0: expected > 0"
    assert not (tmp_path / "r").exists()  # failed before any work
    result = subprocess.run([sys.executable, "-m", "selfsup.cli", "pretrain", "--data",
                             str(tmp_path / "missing"), "--out", str(tmp_path / "r")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "no such file or folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_file_with_command_line_override(tmp_path):
    (tmp_path / "c.yaml").write_text("data: digits\nmethod: byol\nepochs: 3\nbatch_size: 0\n")
    with pytest.raises(ConfigError, match="batch_size=0"):
        run(["pretrain", "--config", str(tmp_path / "c.yaml")])
    (tmp_path / "bad.yaml").write_text("data: digits\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*unknown option 'learning_rate'"):
        run(["pretrain", "--config", str(tmp_path / "bad.yaml")])
    with pytest.raises(ConfigError, match="epochs=0"):  # the command line wins over the file
        run(["pretrain", "--config", str(tmp_path / "c.yaml"), "--batch-size", "8", "--epochs", "0"])


def test_benchmark_command_writes_tables(tmp_path, capsys):
    import csv

    run(["benchmark", "--methods", "simclr,byol", "--data", "digits", "--epochs", "1",
         "--image-size", "16", "--out", str(tmp_path / "results")])
    rows = list(csv.DictReader(open(tmp_path / "results" / "results.csv")))
    assert [r["method"] for r in rows] == ["simclr", "byol"]
    assert all(r["backbone"] == "smallcnn" and float(r["knn_top1"]) > 0.1 and r["5_shot"] for r in rows)
    assert all(0 < float(r["sec_per_epoch"]) < float(r["seconds"]) for r in rows)  # training alone, 1 epoch
    table = (tmp_path / "results" / "results.md").read_text()
    assert "| simclr |" in table and "Protocols:" in table and "Hungarian" in table
    assert "| byol |" in capsys.readouterr().out


def test_a_registered_task_command_is_on_the_command_line_and_runs(monkeypatch, capsys):
    """A task registers its options and its runner in one place; nothing else to edit."""
    from selfsup.tasks import commands

    monkeypatch.setattr(commands, "COMMANDS", dict(commands.COMMANDS))

    @commands.command("echo", help="print a word", description="Print WORD.",
                      run=lambda a: print(f"echo {a['word']}"))
    def _arguments(p):
        p.add_argument("word")

    assert run(["echo", "hello"]) == 0
    assert capsys.readouterr().out == "echo hello\n"


def test_method_options_reach_the_method_and_are_recorded(tmp_path, capsys):
    from selfsup.runs import Run

    out = tmp_path / "moco"
    assert run(["pretrain", "--data", "digits", "--method", "moco", "--epochs", "1", "--image-size", "16",
                "--method-option", "queue_size=512", "--method-option", "temperature=0.3", "--no-report",
                "--out", str(out)]) == 0
    saved = PretrainConfig.load(out / "config.yaml")
    assert saved.method_options["queue_size"] == 512 and saved.method_options["temperature"] == 0.3
    assert saved.method_options["bn_splits"] == 8  # the defaults are recorded too
    assert saved.temperature == 0.3
    method = Run(out).method()
    assert method.queue.features.shape[0] == 512 and method.temperature == 0.3


def test_numbers_with_an_exponent_are_numbers_in_options_and_config_files(tmp_path):
    """PyYAML (YAML 1.1) reads 5e-4 as the string '5e-4'; a user's 5e-4 is a number."""
    from selfsup.config import read_options

    assert parse_options(["temperature=5e-1", "lr=1E-3", "n=2e3", "name=e5", "v=1.5e+2"]) == \
        {"temperature": 0.5, "lr": 0.001, "n": 2000.0, "name": "e5", "v": 150.0}
    path = tmp_path / "config.yaml"
    path.write_text("data: digits\nweight_decay: 5e-4\nlr: -1e-2\nmethod_options: {temperature: 2e-1}\n")
    assert read_options(path) == {"data": "digits", "weight_decay": 5e-4, "lr": -0.01,
                                  "method_options": {"temperature": 0.2}}


@pytest.mark.parametrize("options, message", [
    ({"queue_sise": 10}, "'queue_sise' is not an option of method moco; options: projection_dim"),
    ({"queue_size": 1.5}, "method_options.queue_size=1.5: expected an integer"),
    ({"temperature": "warm"}, "method_options.temperature='warm': expected a number"),
    # accepted before (issue 20's audit): a negative temperature trained, silently
    ({"temperature": -1}, r"method_options.temperature=-1.0: expected > 0"),
    ({"temperature": float("nan")}, r"method_options.temperature=nan: expected a finite number"),
    ({"base_momentum": 2}, r"method_options.base_momentum=2.0: expected from 0 to 1"),
])
def test_bad_method_option_is_one_line_naming_it(options, message, tmp_path):
    from selfsup.tasks import pretrain

    with pytest.raises(ConfigError, match=message):
        pretrain(PretrainConfig(data="digits", method="moco", method_options=options, out=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def test_methods_command_shows_options_and_defaults(capsys):
    run(["methods", "dino"])
    out = capsys.readouterr().out
    assert "out_dim" in out and "4096" in out and "teacher_temperature" in out and "0.04" in out


def test_a_reader_that_closes_stdout_first_is_not_a_crash(tmp_path):
    """``selfsup methods simclr | head -0``: the pipe's reader is gone before the card is printed;
    exit 141 as a SIGPIPE'd tool does, with nothing on stderr and no crash log."""
    env = {**os.environ, "SELFSUP_CRASH_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "selfsup.cli", "methods", "simclr"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()  # before the interpreter has even imported selfsup
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141, stderr
    assert stderr == "" and not list(tmp_path.iterdir())
