"""The Selfmem retrieval-augmented generator: one encoder-decoder, three architectures.

``arch`` (one config key) picks how the memory reaches the model:

* ``vanilla``: a plain encoder-decoder over the source; the memory is ignored.
* ``joint`` (the paper's "concate"): one encoder over the text pair ``source </s> memory``
  (``<s> source </s> memory </s>`` with this project's tokenizer), truncated longest-first to
  ``max_source_length + max_memory_length`` tokens.
* ``dual`` (the paper's "separate"): the SAME encoder runs twice, over the source and over the
  memory; every decoder layer gets an extra cross-attention block over the memory states
  (self-attention -> source cross-attention -> memory cross-attention -> feed-forward, each
  post-norm like BART). ``model.generate(input_ids, attention_mask, memory_input_ids=...,
  memory_attention_mask=...)`` works with HF beam search: the memory is encoded with the source,
  carried in the encoder outputs (so generate expands it for the beams) and its per-layer
  keys/values are cached beside the source cross-attention cache.

The models are transformers' BART classes (``BartForConditionalGeneration`` from a ``BartConfig``
built from scratch for the embedded default; a pretrained BART/Marian/... seq2seq folder or hub
name for vanilla and joint, a BART-family one for dual). :class:`Generator` bundles model,
tokenizer and the Selfmem settings; it saves to and loads from one folder (``selfmem.json``
next to the transformers files).

The dual model is :mod:`relift.selfmem.generator.dual`, the pre-LN copy-head model
:mod:`relift.selfmem.generator.copy_head`; both register with transformers' Auto classes on import.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    BartConfig,
    BartForConditionalGeneration,
    MBartConfig,
    MBartForConditionalGeneration,
)

from relift.io import InputError, save_tokenizer
from relift.selfmem.generator.common import CACHE_FIELD
from relift.selfmem.generator.copy_head import (
    CopyMBartConfig,
    CopyMBartForConditionalGeneration,
    beam_search_cache,
)
from relift.selfmem.generator.dual import DualBartConfig, DualBartForConditionalGeneration
from relift.selfmem.generator.settings import GeneratorSettings

ARCHS = ("vanilla", "joint", "dual")
SPEC_FILE = "selfmem.json"


# --------------------------------------------------------------------------- generator bundle
def _shape_mismatch(path: Path, cls_) -> str | None:
    """The first tensor of ``model.safetensors`` whose shape differs from what ``config.json``
    builds (a checkpoint of another model size), as a message; None when all agree."""
    try:
        from safetensors import safe_open

        config = AutoConfig.from_pretrained(str(path))
        with torch.device("meta"):
            model = cls_.from_config(config) if hasattr(cls_, "from_config") else cls_(config)
        own = model.state_dict()
        with safe_open(str(path / "model.safetensors"), "pt") as fh:
            for name in fh.keys():
                got = tuple(fh.get_slice(name).get_shape())
                if name in own and tuple(own[name].shape) != got:
                    return (
                        f"model.safetensors holds weights of another model size: {name} has "
                        f"shape {got} but config.json asks for {tuple(own[name].shape)}"
                    )
    except Exception:  # noqa: BLE001 - only a better message is at stake
        return None
    return None


@dataclass
class GeneratorSpec:
    """The Selfmem settings saved with a generator (``selfmem.json``)."""

    arch: str = "joint"
    max_source_length: int = 128
    max_memory_length: int = 128
    max_target_length: int = 128
    # the memory recipe's inference part (relift.selfmem.generator.recipe): memories whose
    # fuzzy match is below memory_min_match are withheld; memory_marker puts a bucket marker
    # before each memory; memory_source puts the memory's own source before its target
    memory_min_match: float = 0.0
    memory_marker: bool = False
    memory_source: bool = False

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise InputError(
                f"unknown arch {self.arch!r}; expected one of {', '.join(ARCHS)}", field="arch"
            )
        for k in ("max_source_length", "max_memory_length", "max_target_length"):
            if getattr(self, k) < 4:
                raise InputError(f"{k} must be at least 4, got {getattr(self, k)}", field=k)


def _setting(name: str):
    """GeneratorSettings' default of ``name``: ModelSize holds no second set of numbers."""
    return next(f.default for f in fields(GeneratorSettings) if f.name == name)


@dataclass
class ModelSize:
    """The shape of a from-scratch Transformer. Its defaults are :class:`GeneratorSettings`'
    (config.yaml's); a trainer builds it with :meth:`from_settings`."""

    d_model: int = _setting("d_model")
    encoder_layers: int = _setting("encoder_layers")
    decoder_layers: int = _setting("decoder_layers")
    attention_heads: int = _setting("attention_heads")
    ffn_dim: int = _setting("ffn_dim")
    dropout: float = _setting("dropout")
    attention_dropout: float = _setting("attention_dropout")
    # pre-LN layers (mBART-style; the dual architecture is post-LN BART only)
    pre_ln: bool = _setting("pre_ln")
    # whether THIS model has the pointer-generator head over the encoder input tokens (vanilla/
    # joint, pre-LN only). Not a setting but its outcome for one arch: GeneratorSettings.copy
    # asks for the head where the arch allows one, and from_settings resolves it; a hand-built
    # size has no head unless asked.
    copy: bool = False
    # position embeddings of a pre-LN model: sinusoidal (fixed) or learned
    positions: str = _setting("positions")
    # the segment embedding of the memory's tokens (joint with the copy head only)
    memory_segments: bool = False

    @classmethod
    def from_settings(cls, st: GeneratorSettings, arch: str) -> ModelSize:
        """The size ``st`` asks for, for ``arch``: dual gets no copy head, and only joint reads
        a memory whose tokens a segment embedding could mark."""
        derived = ("copy", "memory_segments")
        return cls(
            **{f.name: getattr(st, f.name) for f in fields(cls) if f.name not in derived},
            copy=st.copy and arch != "dual",
            memory_segments=st.memory_segments and arch == "joint",
        )


def scratch_config(tokenizer, spec: GeneratorSpec, size: ModelSize) -> BartConfig:
    """Config of a from-scratch Transformer with shared, tied embeddings: pre-LN mBART-style
    (``size.pre_ln``; with a copy head when ``size.copy``) or post-LN BART (``dual`` always)."""
    if size.d_model % size.attention_heads:
        raise InputError(
            f"d_model {size.d_model} is not divisible by attention_heads {size.attention_heads}",
            field="d_model",
        )
    positions = max(spec.max_source_length + spec.max_memory_length, spec.max_target_length) + 8
    if size.copy and (spec.arch == "dual" or not size.pre_ln):
        raise InputError(
            "the copy head is built for the pre-LN vanilla/joint generator, not for "
            f"arch {spec.arch!r} with pre_ln={size.pre_ln}",
            field="copy",
        )
    if size.memory_segments and not (size.copy and spec.arch == "joint"):
        raise InputError(
            "the memory's segment embedding is built for the joint generator with the copy "
            f"head, not for arch {spec.arch!r} with copy={size.copy}",
            field="memory_segments",
        )
    extra = {"memory_segments": True} if size.memory_segments else {}
    if spec.arch == "dual":
        cls = DualBartConfig
    elif size.copy:
        cls = CopyMBartConfig
    elif size.pre_ln:
        cls = MBartConfig
    else:
        cls = BartConfig
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return cls(
        vocab_size=len(tokenizer),
        d_model=size.d_model,
        encoder_layers=size.encoder_layers,
        decoder_layers=size.decoder_layers,
        encoder_attention_heads=size.attention_heads,
        decoder_attention_heads=size.attention_heads,
        encoder_ffn_dim=size.ffn_dim,
        decoder_ffn_dim=size.ffn_dim,
        dropout=size.dropout,
        attention_dropout=size.attention_dropout,
        activation_dropout=0.0,
        activation_function="gelu",
        max_position_embeddings=positions,
        scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=bos,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=bos,
        forced_bos_token_id=None,
        forced_eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        is_encoder_decoder=True,
        **extra,
    )


def sinusoids(n: int, d: int) -> torch.Tensor:
    """The Transformer's fixed sinusoidal position table [n, d] (sin | cos halves)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d // 2, dtype=torch.float32) / (d // 2))
    table = torch.zeros(n, d)
    table[:, : d // 2] = torch.sin(pos * freq)
    table[:, d // 2 : 2 * (d // 2)] = torch.cos(pos * freq)
    return table


class Generator:
    """A retrieval-augmented generator: model + tokenizer + :class:`GeneratorSpec`."""

    def __init__(self, model, tokenizer, spec: GeneratorSpec):
        self.model, self.tokenizer, self.spec = model, tokenizer, spec
        if tokenizer.pad_token_id is None:
            raise InputError("the tokenizer has no pad token")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_scratch(
        cls, tokenizer, spec: GeneratorSpec, size: ModelSize | None = None, seed: int = 0
    ):
        torch.manual_seed(seed)
        size = size or ModelSize.from_settings(GeneratorSettings(), spec.arch)
        config = scratch_config(tokenizer, spec, size)
        model = {
            DualBartConfig: DualBartForConditionalGeneration,
            CopyMBartConfig: CopyMBartForConditionalGeneration,
            MBartConfig: MBartForConditionalGeneration,
            BartConfig: BartForConditionalGeneration,
        }[type(config)](config)
        if isinstance(model, MBartForConditionalGeneration) and size.positions == "sinusoidal":
            for emb in (model.model.encoder.embed_positions, model.model.decoder.embed_positions):
                emb.weight.data.copy_(sinusoids(emb.num_embeddings, emb.embedding_dim))
                emb.weight.requires_grad_(False)
        return cls(model, tokenizer, spec)

    @classmethod
    def from_pretrained_model(cls, name_or_path: str, tokenizer, spec: GeneratorSpec):
        """Start from a pretrained seq2seq checkpoint (dual: BART-family only; its memory
        cross-attention starts as a copy of the source cross-attention)."""
        try:
            if spec.arch == "dual":
                config = AutoConfig.from_pretrained(name_or_path)
                if config.model_type not in ("bart", DualBartConfig.model_type):
                    raise InputError(
                        f"the dual architecture needs a BART checkpoint, got model_type "
                        f"{config.model_type!r}",
                        path=name_or_path,
                    )
                model = DualBartForConditionalGeneration.from_pretrained(name_or_path)
                if config.model_type == "bart":
                    for layer in model.model.decoder.layers:
                        layer.memory_attn.load_state_dict(layer.encoder_attn.state_dict())
                        layer.memory_attn_layer_norm.load_state_dict(
                            layer.encoder_attn_layer_norm.state_dict()
                        )
            else:
                model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path)
        except InputError:
            raise
        except Exception as err:
            raise InputError(
                f"cannot load pretrained generator: {err}", path=name_or_path
            ) from None
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        return cls(model, tokenizer, spec)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu"):
        from relift.selfmem.generator.tokenizer import load_tokenizer

        path = Path(path)
        spec_path = path / SPEC_FILE
        if not spec_path.exists():
            raise InputError(f"not a Selfmem generator folder (no {SPEC_FILE})", path=path)
        try:
            spec = GeneratorSpec(**json.loads(spec_path.read_text()))
        except (TypeError, json.JSONDecodeError) as err:
            raise InputError(f"bad generator settings: {err}", path=spec_path) from None
        tokenizer = load_tokenizer(path)
        cls_ = DualBartForConditionalGeneration if spec.arch == "dual" else AutoModelForSeq2SeqLM
        mismatch = _shape_mismatch(path, cls_)  # before transformers' long load report
        if mismatch:
            raise InputError(f"cannot load the generator weights: {mismatch}", path=path)
        try:
            model = cls_.from_pretrained(str(path))
        except (OSError, RuntimeError, ValueError) as err:
            detail = str(err).strip().splitlines()[0][:300]
            raise InputError(f"cannot load the generator weights: {detail}", path=path) from None
        model.to(device).eval()
        return cls(model, tokenizer, spec)

    def memory_view(
        self,
        memories: list[str] | None,
        scores: list[float] | None,
        sources: list[str] | None = None,
    ):
        """The memories as this generator reads them: its recipe applied (withheld below
        ``memory_min_match``, bucket marker, the memory's own source) given each memory's
        fuzzy-match score and source. Every caller (training, dev, candidates, diagnostics,
        loop) goes through here."""
        from relift.selfmem.generator.recipe import memory_view

        if memories is None or self.spec.arch == "vanilla":
            return memories
        sp = self.spec
        return memory_view(
            memories, scores, sp.memory_min_match, sp.memory_marker, sources, sp.memory_source
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write model, tokenizer and ``selfmem.json`` into ``path`` (an existing folder)."""
        path = Path(path)
        self.model.save_pretrained(str(path))
        save_tokenizer(self.tokenizer, path)
        (path / SPEC_FILE).write_text(json.dumps(asdict(self.spec), indent=2) + "\n")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ inputs
    def encode_inputs(
        self, sources: list[str], memories: list[str] | None
    ) -> dict[str, torch.Tensor]:
        """Tokenised, padded encoder inputs for the architecture (tensors on CPU)."""
        tok, spec = self.tokenizer, self.spec
        if spec.arch != "vanilla":
            if memories is None:
                raise InputError(f"the {spec.arch} generator needs memories")
            if len(memories) != len(sources):
                raise InputError(f"{len(memories)} memories for {len(sources)} sources")
        if spec.arch == "joint":
            return dict(
                tok(
                    sources,
                    memories,
                    truncation="longest_first",
                    max_length=spec.max_source_length + spec.max_memory_length,
                    padding=True,
                    return_tensors="pt",
                )
            )
        enc = dict(
            tok(
                sources,
                truncation=True,
                max_length=spec.max_source_length,
                padding=True,
                return_tensors="pt",
            )
        )
        if spec.arch == "dual":
            mem = tok(
                memories,
                truncation=True,
                max_length=spec.max_memory_length,
                padding=True,
                return_tensors="pt",
            )
            enc["memory_input_ids"] = mem["input_ids"]
            enc["memory_attention_mask"] = mem["attention_mask"]
        enc.pop("token_type_ids", None)
        return enc

    def encode_labels(self, targets: list[str]) -> torch.Tensor:
        """Target ids padded with -100; a leading decoder-start token is dropped (it is the
        decoder's first input, not a label)."""
        start = self.model.config.decoder_start_token_id
        ids = self.tokenizer(targets, truncation=True, max_length=self.spec.max_target_length + 1)[
            "input_ids"
        ]
        ids = [x[1:] if x and x[0] == start else x[: self.spec.max_target_length] for x in ids]
        width = max(1, max(len(x) for x in ids))
        out = torch.full((len(ids), width), -100, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        return out

    def batch(self, sources, memories, targets=None) -> dict[str, torch.Tensor]:
        enc = self.encode_inputs(sources, memories)
        if targets is not None:
            enc["labels"] = self.encode_labels(targets)
        return enc

    # ------------------------------------------------------------------ generation
    def decode(self, ids: torch.Tensor) -> list[str]:
        texts = self.tokenizer.batch_decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return [" ".join(t.split()) for t in texts]

    def output_budget(self, longest: int, ratio: float = 2.0, extra: int = 10) -> int:
        """Output budget of a batch whose longest source has ``longest`` tokens: ``ratio`` x
        ``longest`` + ``extra``, at most ``max_target_length`` + 1 (an untrained model never
        stops by itself); ``ratio`` 0: always that cap."""
        cap = self.spec.max_target_length + 1
        return max(1, min(cap, int(ratio * longest) + extra)) if ratio > 0 else cap

    def max_new_tokens_for(self, sources: list[str], ratio: float = 2.0, extra: int = 10) -> int:
        """:meth:`output_budget` of a batch of sources (tokenised here)."""
        if ratio <= 0:
            return self.output_budget(0, ratio, extra)
        ids = self.tokenizer(sources, add_special_tokens=False)["input_ids"]
        return self.output_budget(max(len(x) for x in ids), ratio, extra)

    @torch.no_grad()
    def generate(
        self,
        sources: list[str],
        memories: list[str] | None,
        num_beams: int = 5,
        num_return_sequences: int = 1,
        max_new_tokens: int | None = None,
        length_penalty: float = 1.0,
        max_length_ratio: float = 2.0,
    ) -> list[list[tuple[str, float]]]:
        """For every source, ``num_return_sequences`` (text, score) pairs, best first; the score is
        the beam's length-normalised log-probability (transformers' ``sequences_scores``).

        Without ``max_new_tokens`` the budget is :meth:`max_new_tokens_for` (``max_length_ratio``;
        0 = always ``max_target_length`` + 1)."""
        if num_return_sequences > num_beams:
            raise InputError(
                f"num_return_sequences ({num_return_sequences}) exceeds num_beams ({num_beams})"
            )
        if max_new_tokens is None:
            max_new_tokens = self.max_new_tokens_for(sources, max_length_ratio)
        self.model.eval()
        enc = {k: v.to(self.device) for k, v in self.encode_inputs(sources, memories).items()}
        out = self.model.generate(
            **enc,
            num_beams=num_beams,
            num_return_sequences=num_return_sequences,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            output_scores=True,
            return_dict_in_generate=True,
            **(
                {
                    "length_penalty": length_penalty,
                    "early_stopping": True,
                    CACHE_FIELD: beam_search_cache(self.model.config),
                }
                if num_beams > 1
                else {}
            ),
        )
        texts = self.decode(out.sequences)
        if num_beams > 1:
            scores = out.sequences_scores.tolist()
        else:  # greedy: mean token log-probability
            logp = torch.stack(out.scores, 1).log_softmax(-1)
            gen = out.sequences[:, 1 : 1 + logp.size(1)]
            tok_lp = logp.gather(-1, gen.unsqueeze(-1)).squeeze(-1)
            keep = gen.ne(self.tokenizer.pad_token_id)
            scores = ((tok_lp * keep).sum(1) / keep.sum(1).clamp(min=1)).tolist()
        k = num_return_sequences
        return [
            list(zip(texts[i * k : (i + 1) * k], scores[i * k : (i + 1) * k], strict=True))
            for i in range(len(sources))
        ]
