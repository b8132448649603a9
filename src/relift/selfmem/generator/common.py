"""Transformers glue shared by the Selfmem generator models (:mod:`relift.selfmem.generator.dual`,
:mod:`relift.selfmem.generator.copy_head`): names that changed between transformers versions, the
generation hook of encoder outputs that carry more than the states, and teacher forcing.
"""

from __future__ import annotations

import inspect

from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.models.bart.modeling_bart import BartAttention, shift_tokens_right

CACHE_FIELD = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"
ATTN_CACHE_KW = (
    "cache" if "cache" in inspect.signature(BartAttention.forward).parameters else "past_key_values"
)


class CustomEncoderOutputs:
    """Generation hook of the generators whose encoder outputs carry more than the states (the
    dual memory states, the copy head's input ids): ``_encode_for_generation`` builds them, under
    both names transformers has used for the hook."""

    def _encode_for_generation(self, inputs_tensor, model_kwargs):
        raise NotImplementedError

    # transformers >= 5.2x name, and the older one
    def _prepare_text_encoder_decoder_kwargs_for_generation(
        self, inputs_tensor, model_kwargs, model_input_name=None, generation_config=None
    ):
        return self._encode_for_generation(inputs_tensor, model_kwargs)

    def _prepare_encoder_decoder_kwargs_for_generation(
        self, inputs_tensor, model_kwargs, model_input_name=None, generation_config=None
    ):
        return self._encode_for_generation(inputs_tensor, model_kwargs)


def decoder_inputs(config, labels, decoder_input_ids):
    """Teacher forcing: decoder inputs are the labels shifted right (when not given)."""
    if labels is not None and decoder_input_ids is None:
        return shift_tokens_right(labels, config.pad_token_id, config.decoder_start_token_id)
    return decoder_input_ids
