"""Issue 28 item 4: ``train.amp: auto`` picks bf16 where a probe shows this machine runs it faster."""

from __future__ import annotations

import pytest
import torch

from ocrloc.config import ConfigError, load_config
from ocrloc.engine import amp as amp_module
from ocrloc.engine.amp import MARGIN, probe_bf16, resolve_amp
from ocrloc.engine.runs import same_config
from ocrloc.config import config_to_dict
from tests.helpers import TINY_ARGMAX


def test_the_probe_times_both_dtypes():
    fp32, bf16 = probe_bf16(torch.device("cpu"), size=16, channels=8, batch=2, repeats=1)
    assert fp32 > 0 and bf16 > 0


@pytest.mark.parametrize("times, chosen", [((1.0, 0.5), True), ((1.0, MARGIN), True), ((1.0, 0.9), False),
                                           ((1.0, 17.0), False)])
def test_auto_takes_bf16_only_where_it_is_clearly_faster(monkeypatch, times, chosen):
    monkeypatch.setattr(amp_module, "probe_bf16", lambda device: times)
    use, note = resolve_amp("auto", torch.device("cpu"))
    assert use is chosen and ("-> bf16" if chosen else "-> fp32") in note
    assert resolve_amp(True, torch.device("cpu")) == (True, "") and resolve_amp(False, torch.device("cpu")) == (False, "")


def test_auto_is_a_value_of_train_amp_and_others_are_refused():
    assert load_config(None, ["train.amp=auto"]).train.amp == "auto"
    with pytest.raises(ConfigError, match="train.amp"):
        load_config(None, ["train.amp=maybe"])


@pytest.mark.parametrize("chosen", [True, False])
def test_the_run_saves_what_auto_chose_and_reuses_it(monkeypatch, tmp_path, chosen):
    from ocrloc.engine.trainer import Trainer

    monkeypatch.setattr(amp_module, "probe_bf16", lambda device: (1.0, 0.5 if chosen else 3.0))
    config = load_config(None, [*TINY_ARGMAX, "data.preset=single",
                                "data.val_count=4", "train.steps=1", "train.batch_size=2", "train.val_every=1",
                                "train.amp=auto", "train.device=cpu", "train.threads=1"])
    trainer = Trainer(config, tmp_path / "run", progress=False)
    trainer.close()
    assert trainer.config.train.amp is chosen
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.train.amp is chosen
    assert same_config(config_to_dict(saved), config)  # compare/experiment reuse the run of 'auto'
