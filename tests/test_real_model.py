"""Smoke test on the real packaged MiniLM and the real movie-review data (slow, run by CI)."""
import pytest
import torch
from peft import PeftModel

import structlora
from structlora.data import load_sentiment
from structlora.models import load_classifier
from structlora.training import make_optimizer, text_loader

pytestmark = pytest.mark.slow


def test_minilm_structlora_few_steps_then_peft_export(tmp_path):
    data = load_sentiment("movie-reviews", train_size=32)
    assert len(data.test[0]) == 1000 and len(data.validation[0]) == 500
    base, tok = load_classifier("minilm")
    model = structlora.wrap(base, r=4, target_modules=["query", "value"], modules_to_save=["classifier"],
                            bottleneck="vib", coordinator="laplacian", refresh_every=2)
    assert len(model.adapters) == 12  # 6 blocks x (query, value)
    opt = make_optimizer(model, lr=2e-3)
    model.train()
    for batch in text_loader(tok, *data.train, batch_size=8, max_length=32):
        loss = model.loss(model(**batch).loss, batch)
        assert torch.isfinite(loss)
        loss.backward(); opt.step(); model.step(); opt.zero_grad()
    assert model.global_step == 4 and model.layer_graph().num_nodes == 12
    batch = next(iter(text_loader(tok, *data.test, batch_size=8, max_length=32)))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        ref = model(**inputs).logits
    model.export_peft(tmp_path / "adapter")
    fresh, _ = load_classifier("minilm")
    with torch.no_grad():
        fresh.classifier.load_state_dict(model.base_model.classifier.state_dict())  # same head init
        peft_logits = PeftModel.from_pretrained(fresh, str(tmp_path / "adapter")).eval()(**inputs).logits
    assert torch.allclose(peft_logits, ref, atol=1e-5)  # float32, summation order only
