"""The ``dual`` generator (the paper's "separate"): BART whose SAME encoder runs over the source and
over the memory; every decoder layer gets an extra cross-attention block over the memory states
(self-attention -> source cross-attention -> memory cross-attention -> feed-forward, each
post-norm like BART). ``model.generate(input_ids, attention_mask, memory_input_ids=...,
memory_attention_mask=...)`` works with HF beam search: the memory is encoded with the source,
carried in the encoder outputs (so generate expands it for the beams) and its per-layer
keys/values are cached beside the source cross-attention cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    BartConfig,
    BartForConditionalGeneration,
)
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.models.bart.modeling_bart import (
    BartAttention,
    BartDecoder,
    BartDecoderLayer,
    BartModel,
)

from relift.selfmem.generator.common import (
    ATTN_CACHE_KW,
    CACHE_FIELD,
    CustomEncoderOutputs,
    decoder_inputs,
)


class DualBartConfig(BartConfig):
    model_type = "relift_dual_bart"


@dataclass
class DualEncoderOutput(BaseModelOutput):
    """Encoder states of the source (``last_hidden_state``) and of the memory."""

    memory_last_hidden_state: torch.Tensor | None = None
    memory_attention_mask: torch.Tensor | None = None


def _cross_mask(mask: torch.Tensor | None, tgt_len: int, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, S) 0/1 padding mask -> (B, 1, T, S) additive mask."""
    if mask is None:
        return None
    m = mask[:, None, None, :].to(dtype)
    return ((1.0 - m) * torch.finfo(dtype).min).expand(-1, 1, tgt_len, -1)


def _causal_mask(mask: torch.Tensor, tgt_len: int, past: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, past + T) 0/1 mask -> (B, 1, T, past + T) additive causal mask."""
    src_len = past + tgt_len
    q = torch.arange(tgt_len, device=mask.device)[:, None] + past
    k = torch.arange(src_len, device=mask.device)[None, :]
    allowed = (k <= q)[None, None] & mask[:, None, None, :].bool()
    return torch.zeros(allowed.shape, dtype=dtype, device=mask.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )


class DualDecoderLayer(BartDecoderLayer):
    """BART decoder layer with a memory cross-attention block after the source cross-attention."""

    def __init__(self, config: BartConfig, layer_idx: int | None = None):
        super().__init__(config, layer_idx=layer_idx)
        self.memory_attn = BartAttention(
            self.embed_dim,
            config.decoder_attention_heads,
            dropout=config.attention_dropout,
            is_decoder=True,
            config=config,
            layer_idx=layer_idx,
        )
        self.memory_attn_layer_norm = nn.LayerNorm(self.embed_dim)

    def _block(self, attn, norm, hidden, kv, mask, cache):
        residual = hidden
        out, _ = attn(hidden, key_value_states=kv, attention_mask=mask, **{ATTN_CACHE_KW: cache})
        out = nn.functional.dropout(out, p=self.dropout, training=self.training)
        return norm(residual + out)

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        memory_hidden_states=None,
        memory_attention_mask=None,
        cache=None,
        memory_cache=None,
        **kwargs,
    ):
        h = self._block(
            self.self_attn, self.self_attn_layer_norm, hidden_states, None, attention_mask, cache
        )
        h = self._block(
            self.encoder_attn,
            self.encoder_attn_layer_norm,
            h,
            encoder_hidden_states,
            encoder_attention_mask,
            cache,
        )
        if memory_hidden_states is not None:
            h = self._block(
                self.memory_attn,
                self.memory_attn_layer_norm,
                h,
                memory_hidden_states,
                memory_attention_mask,
                memory_cache,
            )
        residual = h
        h = self.activation_fn(self.fc1(h))
        h = nn.functional.dropout(h, p=self.activation_dropout, training=self.training)
        h = self.fc2(h)
        h = nn.functional.dropout(h, p=self.dropout, training=self.training)
        return self.final_layer_norm(residual + h)


class DualDecoder(BartDecoder):
    """BART decoder whose layers also attend to the memory states."""

    def __init__(self, config: BartConfig):
        super().__init__(config)
        self.layers = nn.ModuleList(
            [DualDecoderLayer(config, layer_idx=i) for i in range(config.decoder_layers)]
        )
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        memory_hidden_states=None,
        memory_attention_mask=None,
        cache=None,
        use_cache=None,
        **kwargs,
    ):
        if cache is None:
            cache = kwargs.get("past_key_values")
        embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(
                DynamicCache(config=self.config), DynamicCache(config=self.config)
            )
        memory_cache = None
        if cache is not None:
            # the memory cross-attention keys/values live in a second cache hung on the first one;
            # beams of one example share them, so beam reordering never needs to touch them
            memory_cache = getattr(cache, "_relift_memory_cache", None)
            if memory_cache is None:
                memory_cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
                cache._relift_memory_cache = memory_cache
        bsz, tgt_len = embeds.shape[:2]
        past = cache.get_seq_length() if cache is not None else 0
        if attention_mask is None:
            attention_mask = torch.ones(bsz, past + tgt_len, device=embeds.device, dtype=torch.long)
        dtype = embeds.dtype
        self_mask = _causal_mask(attention_mask, tgt_len, past, dtype)
        enc_mask = _cross_mask(encoder_attention_mask, tgt_len, dtype)
        mem_mask = _cross_mask(memory_attention_mask, tgt_len, dtype)
        position_ids = torch.arange(tgt_len, device=embeds.device) + past
        positions = self.embed_positions(input_ids, past, position_ids=position_ids).to(
            embeds.device
        )
        h = self.layernorm_embedding(embeds + positions)
        h = nn.functional.dropout(h, p=self.dropout, training=self.training)
        for layer in self.layers:
            h = layer(
                h,
                self_mask,
                encoder_hidden_states,
                enc_mask,
                memory_hidden_states,
                mem_mask,
                cache=cache,
                memory_cache=memory_cache,
            )
        return h, cache


class DualBartModel(BartModel):
    def __init__(self, config: BartConfig):
        super().__init__(config)
        self.decoder = DualDecoder(config)
        self.post_init()

    def encode(
        self, input_ids, attention_mask, memory_input_ids, memory_attention_mask
    ) -> DualEncoderOutput:
        """Run the shared encoder over the source and over the memory."""
        if memory_input_ids is None:
            raise ValueError(
                "the dual generator needs memory_input_ids (and memory_attention_mask)"
            )
        if memory_attention_mask is None:
            memory_attention_mask = memory_input_ids.ne(self.config.pad_token_id).long()
        src = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mem = self.encoder(
            input_ids=memory_input_ids, attention_mask=memory_attention_mask
        ).last_hidden_state
        return DualEncoderOutput(
            last_hidden_state=src,
            memory_last_hidden_state=mem,
            memory_attention_mask=memory_attention_mask,
        )

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        memory_input_ids=None,
        memory_attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        encoder_outputs=None,
        cache=None,
        use_cache=None,
        **kwargs,
    ):
        if encoder_outputs is None:
            encoder_outputs = self.encode(
                input_ids, attention_mask, memory_input_ids, memory_attention_mask
            )
        memory = getattr(encoder_outputs, "memory_last_hidden_state", None)
        if memory is None:
            raise ValueError("dual generator: encoder_outputs lack the memory states")
        h, cache = self.decoder(
            decoder_input_ids,
            decoder_attention_mask,
            encoder_outputs.last_hidden_state,
            attention_mask,
            memory,
            encoder_outputs.memory_attention_mask,
            cache=cache if cache is not None else kwargs.get("past_key_values"),
            use_cache=use_cache,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=h,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            **{CACHE_FIELD: cache},
        )


class DualBartForConditionalGeneration(CustomEncoderOutputs, BartForConditionalGeneration):
    """BART with a dual (source + memory) encoder pass and memory cross-attention."""

    config_class = DualBartConfig

    def __init__(self, config: BartConfig):
        super().__init__(config)
        self.model = DualBartModel(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        memory_input_ids=None,
        memory_attention_mask=None,
        decoder_input_ids=None,
        decoder_attention_mask=None,
        encoder_outputs=None,
        cache=None,
        labels=None,
        use_cache=None,
        **kwargs,
    ):
        if labels is not None:
            use_cache = False
        decoder_input_ids = decoder_inputs(self.config, labels, decoder_input_ids)
        out = self.model(
            input_ids,
            attention_mask,
            memory_input_ids,
            memory_attention_mask,
            decoder_input_ids,
            decoder_attention_mask,
            encoder_outputs,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(out.last_hidden_state) + self.final_logits_bias.to(
            out.last_hidden_state.device
        )
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits.view(-1, logits.size(-1)), labels.to(logits.device).view(-1)
            )
        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            encoder_last_hidden_state=out.encoder_last_hidden_state,
            **{CACHE_FIELD: getattr(out, CACHE_FIELD)},
        )

    def _encode_for_generation(self, inputs_tensor, model_kwargs):
        mem_ids = model_kwargs.pop("memory_input_ids", None)
        mem_mask = model_kwargs.pop("memory_attention_mask", None)
        model_kwargs["encoder_outputs"] = self.model.encode(
            inputs_tensor, model_kwargs.get("attention_mask"), mem_ids, mem_mask
        )
        return model_kwargs


try:  # let AutoConfig / AutoModelForSeq2SeqLM open saved dual generators
    AutoConfig.register(DualBartConfig.model_type, DualBartConfig)
    AutoModelForSeq2SeqLM.register(DualBartConfig, DualBartForConditionalGeneration)
except ValueError:  # already registered (module reloaded)
    pass
