"""The pre-LN (mBART-style) generator with a pointer-generator copy head over the encoder input
(vanilla and joint; :class:`CopyMBartForConditionalGeneration`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    MBartConfig,
    MBartForConditionalGeneration,
)
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

from relift.selfmem.generator.common import CACHE_FIELD, CustomEncoderOutputs, decoder_inputs


# --------------------------------------------------------------------------- pre-LN + copy head
@dataclass
class CopyEncoderOutput(BaseModelOutput):
    """Encoder states plus the encoder's input ids (the tokens the copy head can copy) and the
    copy head's keys of the encoder states (computed once per generate call, not every step);
    carried in ``encoder_outputs`` so that generate expands them for the beams."""

    source_ids: torch.Tensor | None = None
    copy_keys: torch.Tensor | None = None


class BeamSearchCache(EncoderDecoderCache):
    """An encoder-decoder cache whose beam reordering leaves the cross-attention keys/values
    alone: the beams of one input share its encoder states, so reordering them (an index_select
    of every layer's [batch x beams, heads, source length, head dim] tensors at every step, about
    a third of a small model's decoding time on CPU) never changes them."""

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)


def beam_search_cache(config) -> BeamSearchCache:
    try:
        return BeamSearchCache(DynamicCache(config=config), DynamicCache(config=config))
    except TypeError:  # older transformers: no config argument
        return BeamSearchCache(DynamicCache(), DynamicCache())


class CopyMBartConfig(MBartConfig):
    model_type = "relift_copy_mbart"


class CopyMBartForConditionalGeneration(CustomEncoderOutputs, MBartForConditionalGeneration):
    """Pre-LN (mBART-style) encoder-decoder with a pointer-generator head (See et al., 2017):

    ``p(w) = g · softmax(lm_head(h))_w + (1 - g) · Σ_{i: x_i = w} a_i``, where ``a`` is a
    single-head attention of the decoder state ``h`` over the encoder states (the source and, for
    joint, the memory tokens), ``g = σ(W [h; context])`` the generation gate. ``logits`` are
    ``log p`` (so softmax/log-softmax of them give ``p`` back and HF beam search is unchanged)."""

    config_class = CopyMBartConfig
    # generate: the copy head's keys of the encoder states once per call (False: every step,
    # as a plain forward does; bench/bench_candidates.py's baseline)
    cache_copy_keys = True

    def __init__(self, config):
        super().__init__(config)
        d = config.d_model
        self.copy_query = nn.Linear(d, d, bias=False)
        self.copy_key = nn.Linear(d, d, bias=False)
        self.copy_gate = nn.Linear(2 * d, 1)
        # config.memory_segments: a segment (type) embedding added to the encoder's token
        # embeddings, 0 for the source and 1 for the memory (the tokens after the first </s>)
        self.segment_embed = nn.Embedding(2, d) if getattr(config, "memory_segments", 0) else None
        self.post_init()

    def enable_memory_segments(self) -> None:
        """Add the segment embedding to a model built without it (a warm start from vanilla),
        zero-initialised: the model computes exactly what it did until training moves it."""
        if self.segment_embed is None:
            emb = nn.Embedding(2, self.config.d_model)
            nn.init.zeros_(emb.weight)
            self.segment_embed = emb.to(self.lm_head.weight.device)
            self.config.memory_segments = True

    def segment_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """0 up to and including the first </s> (``<s> source </s>``), 1 after it (the
        memory and its closing </s>); a source alone is all 0."""
        eos = input_ids.eq(self.config.eos_token_id).long()
        return (eos.cumsum(1) - eos).gt(0).long()

    def encode(self, input_ids: torch.Tensor, attention_mask=None):
        """The encoder's outputs over ``input_ids``, with the segment embedding when the model
        has one."""
        encoder = self.get_encoder()
        if self.segment_embed is None:
            return encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        embeds = encoder.embed_tokens(input_ids)
        embeds = embeds + self.segment_embed(self.segment_ids(input_ids)).to(embeds.dtype)
        return encoder(inputs_embeds=embeds, attention_mask=attention_mask, return_dict=True)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        decoder_input_ids=None,
        encoder_outputs=None,
        labels=None,
        use_cache=None,
        **kwargs,
    ):
        if labels is not None:
            use_cache = False
        decoder_input_ids = decoder_inputs(self.config, labels, decoder_input_ids)
        kwargs.pop("return_dict", None)
        if encoder_outputs is None and self.segment_embed is not None:
            encoder_outputs = self.encode(input_ids, attention_mask)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            encoder_outputs=encoder_outputs,
            use_cache=use_cache,
            return_dict=True,
            **kwargs,
        )
        h, enc = out.last_hidden_state, out.encoder_last_hidden_state
        src = getattr(encoder_outputs, "source_ids", None) if encoder_outputs is not None else None
        if src is None:
            src = input_ids
        if src is None:
            raise ValueError("the copy head needs the encoder input ids")
        if attention_mask is None:
            attention_mask = src.ne(self.config.pad_token_id).long()
        logits = self.lm_head(h) + self.final_logits_bias.to(h.device)
        keys = getattr(encoder_outputs, "copy_keys", None) if encoder_outputs is not None else None
        if keys is None:
            keys = self.copy_key(enc)
        scores = self.copy_query(h) @ keys.transpose(1, 2)
        scores = scores.float() / math.sqrt(h.size(-1))
        scores = scores.masked_fill(~attention_mask.bool()[:, None, :], float("-inf"))
        attn = scores.softmax(-1)  # (B, T, S)
        context = (attn.to(enc.dtype) @ enc).to(h.dtype)
        gate = torch.sigmoid(self.copy_gate(torch.cat([h, context], -1)).float())  # (B, T, 1)
        p = gate * logits.float().softmax(-1)
        index = src[:, None, :].expand(-1, attn.size(1), -1)
        p = p.scatter_add(-1, index, (1 - gate) * attn)
        logp = p.clamp_min(1e-10).log()
        loss = None
        if labels is not None:
            loss = nn.functional.nll_loss(
                logp.view(-1, logp.size(-1)), labels.to(logp.device).view(-1), ignore_index=-100
            )
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logp,
            encoder_last_hidden_state=enc,
            **{CACHE_FIELD: getattr(out, CACHE_FIELD, None)},
        )

    def _encode_for_generation(self, inputs_tensor, model_kwargs):
        enc = self.encode(inputs_tensor, model_kwargs.get("attention_mask"))
        model_kwargs["encoder_outputs"] = CopyEncoderOutput(
            last_hidden_state=enc.last_hidden_state,
            source_ids=inputs_tensor,
            copy_keys=self.copy_key(enc.last_hidden_state) if self.cache_copy_keys else None,
        )
        return model_kwargs


try:
    AutoConfig.register(CopyMBartConfig.model_type, CopyMBartConfig)
    AutoModelForSeq2SeqLM.register(CopyMBartConfig, CopyMBartForConditionalGeneration)
except ValueError:
    pass
