"""The token-level LM of the baseline, optionally with a learned output bias, and its loader.

With ``output_bias`` the LM head is ``logits = W h + b`` (a ``LlamaForCausalLM`` whose
``lm_head`` has a bias), ``b`` initialised to the add-one smoothed log unigram frequencies of the
training targets (:func:`log_unigram`): the same head start ReGPT's phrase bias has, so at step 0
the model is (close to) the unigram model of its tokens instead of uniform over the vocabulary.

A biased model is saved with ``model_type`` ``relift-token-lm`` (:class:`BiasedLlamaConfig`,
registered with AutoConfig and AutoModelForCausalLM by :func:`register`): a plain
``LlamaForCausalLM.from_pretrained`` would drop ``lm_head.bias`` with only a warning, an
unregistered AutoModelForCausalLM refuses the folder. Load any baseline folder (biased or a plain
``llama`` one) with :func:`load_token_lm`.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from relift.io import InputError

TOKEN_LM_TYPE = "relift-token-lm"


class BiasedLlamaConfig(LlamaConfig):
    """A LlamaConfig whose model has a bias on its LM head."""

    model_type = TOKEN_LM_TYPE


class BiasedLlamaForCausalLM(LlamaForCausalLM):
    """LlamaForCausalLM with ``lm_head = Linear(hidden, vocab, bias=True)``."""

    config_class = BiasedLlamaConfig

    def __init__(self, config: BiasedLlamaConfig):
        super().__init__(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self._init_weights(self.lm_head)  # as the unbiased head: normal(0, 0.02), bias 0

    @property
    def output_bias(self) -> torch.Tensor:
        return self.lm_head.bias


_REGISTERED = False


def register() -> None:
    """Register ``relift-token-lm`` with AutoConfig and AutoModelForCausalLM (idempotent)."""
    global _REGISTERED
    if not _REGISTERED:
        AutoConfig.register(TOKEN_LM_TYPE, BiasedLlamaConfig, exist_ok=True)
        AutoModelForCausalLM.register(BiasedLlamaConfig, BiasedLlamaForCausalLM, exist_ok=True)
        _REGISTERED = True


def log_unigram(wins, vocab_size: int) -> torch.Tensor:
    """Add-one smoothed log unigram probabilities [vocab_size] of the windows' targets (every
    token but each window's first), as ReGPT's phrase bias is initialised."""
    counts = np.bincount(np.concatenate([w[1:] for w in wins]), minlength=vocab_size)
    counts = counts[:vocab_size].astype(np.float64)
    return torch.from_numpy(np.log((counts + 1.0) / (counts.sum() + vocab_size))).float()


def build_token_lm(config: LlamaConfig, output_bias: bool = False, log_prior=None):
    """A fresh token LM of ``config``; with ``output_bias`` the head's bias starts at
    ``log_prior`` (e.g. :func:`log_unigram`; zeros when None)."""
    if not output_bias:
        return LlamaForCausalLM(config)
    register()
    fields = {k: v for k, v in config.to_dict().items() if k != "model_type"}
    model = BiasedLlamaForCausalLM(BiasedLlamaConfig.from_dict(fields))
    if log_prior is not None:
        if log_prior.shape != model.output_bias.shape:
            raise InputError(
                f"log prior of shape {tuple(log_prior.shape)} for a vocabulary of "
                f"{config.vocab_size}"
            )
        with torch.no_grad():
            model.output_bias.copy_(log_prior)
    return model


def load_token_lm(folder: str | os.PathLike, device: torch.device | str = "cpu"):
    """The token LM saved in ``folder`` (``relift-token-lm`` with its output bias, or a plain
    ``llama`` folder), in eval mode on ``device``."""
    register()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder))
    except Exception as err:
        raise InputError(f"not a token LM folder ({err})", path=folder) from None
    return model.to(device).eval()
