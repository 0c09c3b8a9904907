"""Fuzzing configs and command lines: a bad value is a ValueError (or exit code 2) naming its
field, never an unrelated traceback; a good one passes validation.

Integers are drawn from [-3, 300]: a larger ``r`` or ``sketch_size`` is valid but
would make the strategy check allocate a huge gate or coordinator.
"""
import contextlib
import dataclasses
import io
import json
import re
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from structlora import StructLoRAConfig
from structlora.cli import _validate_strategies, build_parser, main
from structlora.run import RunConfig

ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["none", "vib", "hsic", "gat", "laplacian", "all-linear", "re:(", "(", "", "query", "cuda:x"]),
    st.text(max_size=6),
    st.lists(st.one_of(st.text(max_size=4), st.integers(-2, 2)), max_size=3),
    st.dictionaries(st.sampled_from(["k", "eta", "steps", "gamma", "init_mean", "x"]),
                    st.one_of(st.integers(-2, 5), st.floats(-2, 5), st.text(max_size=3)), max_size=2),
)
TEXT = st.one_of(
    st.sampled_from(["-1", "0", "1", "2", "0.5", "1e400", "nan", "inf", "none", "true", "x", "", "all-linear",
                     "re:(", "query,value", '{"k": 2}', '{"k": "x"}', "[1]", "3", "vib", "gcn", "topk-norm"]),
    st.text(max_size=6),
)


class Reached(BaseException):
    """Raised by the stubbed train_run: the options were accepted."""


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _overrides(cls):
    return st.lists(st.sampled_from(_fields(cls)), min_size=1, max_size=3, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({n: ANY for n in names}))


FIELD_IN_MESSAGE = [
    r"(?:RunConfig|StructLoRAConfig)\.(\w+)=",  # a dataclass check
    r"argument --(?:no-)?([\w-]+)",  # argparse could not parse a flag
    r"unknown option\(s\) \['(\w+)'",  # a config-file key that is no field
    r"error: (\w+)=",  # the CLI's strategy check
]


def _named_field(message: str) -> str | None:
    """The field an error message is about (flags in their field spelling)."""
    for pattern in FIELD_IN_MESSAGE:
        found = re.search(pattern, message)
        if found:
            return found.group(1).replace("-", "_")
    return None


@given(_overrides(StructLoRAConfig))
def test_structlora_config_names_the_bad_field(kw):
    try:
        cfg = StructLoRAConfig(**kw)
    except ValueError as e:
        assert str(e).startswith("StructLoRAConfig.") and _named_field(str(e)) in kw, e
        return
    assert StructLoRAConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    try:
        _validate_strategies(cfg)
    except ValueError as e:  # a name or kwarg no strategy accepts
        assert _named_field(f"error: {e}") in kw, e


@given(_overrides(RunConfig))
def test_run_config_names_the_bad_field(kw):
    try:
        run = RunConfig(**kw)
    except ValueError as e:
        assert str(e).startswith("RunConfig.") and _named_field(str(e)) in kw, e
        return
    json.dumps(dataclasses.asdict(run))


def _run_cli(argv: list[str]) -> tuple[int | None, str]:
    """``(exit code, stderr)``, or ``(None, "")`` when the options reached training."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            mock.patch("structlora.run.train_run", side_effect=Reached):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: "argument --flag: invalid ..."
            code = e.code
        except Reached:
            return None, ""
    return code, err.getvalue()


def _train_flags() -> dict[str, object]:
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    return {a.option_strings[0]: a for a in train._actions
            if a.option_strings and a.option_strings[0] not in ("-h", "--output-dir", "--config", "--resume")}


FLAGS = _train_flags()


@given(st.lists(st.tuples(st.sampled_from(sorted(FLAGS)), TEXT), min_size=1, max_size=3, unique_by=lambda p: p[0]))
def test_cli_arguments_fail_with_one_line_naming_the_flag(pairs):
    argv = ["train", "--output-dir", "unused"]
    for flag, value in pairs:
        argv += [flag] if FLAGS[flag].nargs == 0 else [flag, value]
    code, err = _run_cli(argv)
    if code is None:
        return
    assert code == 2 and "Traceback" not in err
    fields = [f.lstrip("-").removeprefix("no-").replace("-", "_") for f, _ in pairs]
    assert _named_field(err.strip().splitlines()[-1]) in fields, (argv, err)


@given(st.dictionaries(st.sampled_from(_fields(RunConfig) + _fields(StructLoRAConfig) + ["rank"]), ANY,
                       min_size=1, max_size=3))
def test_config_files_fail_with_one_line_naming_the_field(options):
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "config.json"
        file.write_text(json.dumps(options))
        code, err = _run_cli(["train", "--output-dir", str(Path(tmp) / "out"), "--config", str(file)])
    if code is None:
        return
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert _named_field(err) in options, (options, err)
