"""The ``structlora`` command line: ``train``, ``eval``, ``export``, ``graph``.

Every RunConfig and StructLoRAConfig field is a flag (``--train-size 512``,
``--bottleneck hsic``, ``--bottleneck-kwargs '{"gamma": 1.0}'``) and a key of
the optional ``--config`` YAML/JSON file; flags win over the file.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .config import StructLoRAConfig

LIST_FIELDS = {"target_modules", "exclude_modules", "modules_to_save"}


class CLIError(ValueError):
    """A user error: reported as one line with exit code 2."""


def _none_or(cast):
    def parse(text: str):
        return None if text.lower() in ("none", "null") else cast(text)
    parse.__name__ = cast.__name__
    return parse


def _list_or_pattern(text: str):
    """Comma-separated names -> list; 'all-linear' or 're:<regex>' -> a string."""
    if text == "all-linear":
        return text
    if text.startswith("re:"):
        return text[3:]
    return [t for t in text.split(",") if t]


def _field_parser(f: dataclasses.Field):
    if f.name in LIST_FIELDS:
        return _list_or_pattern
    ann = str(f.type)
    if "dict" in ann:
        return json.loads
    for name, cast in (("int", int), ("float", float)):
        if ann.startswith(name):
            return _none_or(cast) if "None" in ann else cast
    return _none_or(str) if "None" in ann else str


def add_config_flags(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    group = parser.add_argument_group(cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if str(f.type) == "bool":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
        else:
            group.add_argument(flag, type=_field_parser(f), default=argparse.SUPPRESS, metavar=f.name.upper())


def read_config_file(path: str) -> dict:
    p = Path(path)
    if not p.exists():
        raise CLIError(f"config file {path} does not exist")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one clear line
        raise CLIError(f"config file {path} could not be parsed: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise CLIError(f"config file {path} must hold a mapping of option: value, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise CLIError(f"config file {path}: option names must be strings, got {bad[0]!r}")
    return data


def build_parser() -> argparse.ArgumentParser:
    from .run import RunConfig

    p = argparse.ArgumentParser(prog="structlora", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="fine-tune and write metrics, checkpoint and PEFT adapter")
    train.add_argument("--config", help="YAML or JSON file of options")
    train.add_argument("--output-dir", required=True, help="where the run's artefacts go")
    train.add_argument("--resume", metavar="DIR", help="continue an interrupted run from a checkpoint "
                       "(a step-* directory, or the checkpoint directory: its newest); other options "
                       "default to the checkpoint's and may not change the run")
    add_config_flags(train, RunConfig)
    add_config_flags(train, StructLoRAConfig, skip=("seed",))  # --seed (RunConfig) seeds both
    ev = sub.add_parser("eval", help="accuracy of a trained run on a data split")
    ev.add_argument("run_dir", help="output directory of `structlora train`")
    ev.add_argument("--split", choices=["validation", "test"], default="test")
    ex = sub.add_parser("export", help="write a PEFT adapter or a merged plain model")
    ex.add_argument("run_dir")
    ex.add_argument("--out", required=True)
    ex.add_argument("--merged", action="store_true", help="save the merged plain HF model instead")
    gr = sub.add_parser("graph", help="draw the layer graph of a trained run to PNG")
    gr.add_argument("run_dir")
    gr.add_argument("--out", required=True, help="PNG file")
    return p


def cmd_train(args: argparse.Namespace) -> int:
    from .distributed import is_main_process
    from .run import default_lora_options, read_run_config, split_options, train_run

    opts = read_config_file(args.config) if args.config else {}
    opts.update({k: v for k, v in vars(args).items() if k not in ("command", "config", "output_dir", "resume")})
    if args.resume:
        saved = read_run_config(args.resume)
        opts = {**saved["run"], **saved["structlora"], **opts}
    elif isinstance(opts.get("model", "minilm"), str):
        opts = {**default_lora_options(opts.get("model", "minilm")), **opts}
    run, lora = split_options(opts)
    _validate_strategies(lora)
    metrics = train_run(run, lora, args.output_dir, resume=args.resume)
    if not is_main_process():
        return 0
    out = Path(args.output_dir)
    ranks = metrics["effective_ranks"]
    if metrics["test_accuracy"] is not None:
        print(f"test accuracy: {metrics['test_accuracy']:.4f}  ", end="")
    print(f"validation accuracy: {metrics['validation_accuracy']:.4f}")
    print(f"effective ranks: {sum(ranks.values())} directions over {len(ranks)} adapters "
          f"(min {min(ranks.values())}, max {max(ranks.values())})")
    if metrics["skipped_steps"]:
        print(f"skipped steps (non-finite loss or gradient): {metrics['skipped_steps']}")
    print(f"PEFT adapter: {out / 'adapter'}   structlora checkpoint: {out / 'checkpoint'}   metrics: {out / 'metrics.json'}")
    return 0


def _validate_strategies(lora: StructLoRAConfig) -> None:
    """Resolve both strategies (and one gate) now, so a bad name or kwarg fails before any loading."""
    from .bottleneck import resolve_bottleneck
    from .graph import resolve_coordinator

    bottleneck = _resolve("bottleneck", resolve_bottleneck, lora.bottleneck, lora.bottleneck_kwargs)
    try:
        bottleneck.make_gate(lora.r, "probe")
    except (TypeError, ValueError, RuntimeError) as e:
        raise CLIError(f"bottleneck_kwargs={lora.bottleneck_kwargs!r} is invalid: {e}") from None
    _resolve("coordinator", resolve_coordinator, lora.coordinator, lora.coordinator_kwargs,
             in_channels=lora.sketch_size**2)


def _resolve(field: str, resolve, query, kwargs: dict, **fixed):
    try:
        resolve(query, **fixed)
    except (TypeError, ValueError, RuntimeError) as e:
        raise CLIError(f"{field}={query!r} is invalid: {e}") from None
    try:
        return resolve(query, **fixed, **kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        raise CLIError(f"{field}_kwargs={kwargs!r} is invalid for {field}={query!r}: {e}") from None


def _load_run(run_dir: str):
    import structlora

    from .data import load_text_data
    from .models import load_classifier
    from .run import RunConfig

    meta_file = Path(run_dir) / "run_config.json"
    if not meta_file.exists():
        raise CLIError(f"{run_dir} is not a `structlora train` output directory (no run_config.json)")
    meta = json.loads(meta_file.read_text())
    run = RunConfig(**meta["run"])
    data = load_text_data(run.data, run.train_size)
    base, tok = load_classifier(run.model, data.num_labels)
    model = structlora.load(base, Path(run_dir) / "checkpoint")
    return run, data, model, tok


def cmd_eval(args: argparse.Namespace) -> int:
    from .training import evaluate, text_loader

    run, data, model, tok = _load_run(args.run_dir)
    texts, labels = getattr(data, args.split)
    acc = evaluate(model, text_loader(tok, texts, labels, 64, run.max_length), progress=True)["accuracy"]
    print(f"{args.split} accuracy: {acc:.4f} ({len(texts)} examples)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .adapters.io import atomic_directory

    _, _, model, tok = _load_run(args.run_dir)
    if args.merged:
        plain = model.merge_and_unload()
        with atomic_directory(args.out) as tmp:
            plain.save_pretrained(tmp)
            tok.save_pretrained(tmp)
        print(f"merged model written to {args.out}")
    else:
        model.export_peft(args.out)
        print(f"PEFT adapter written to {args.out}")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from .graph import draw_layer_graph

    _, _, model, _ = _load_run(args.run_dir)
    draw_layer_graph(model.layer_graph(), args.out)
    print(f"layer graph written to {args.out}")
    return 0


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "graph": cmd_graph}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CLIError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"structlora {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, FloatingPointError) as e:
        print(f"structlora {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
