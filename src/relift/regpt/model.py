"""ReGPT: a Llama decoder stack that reads and predicts phrases through a frozen embedding table.

The model has no token embedding and no LM head. With ``E`` the frozen RAW phrase-embedding
matrix ``[V, d]`` (``phrases_embeddings.npy``; row i = phrase id i):

* input of position t: ``x_t = W_in · E[id_t] + b_in``  (Linear d → hidden, fed as
  ``inputs_embeds`` to a transformers ``LlamaModel``);
* query of position t: ``q_t = W_out · h_t + b_out``  (Linear hidden → d);
* score of a candidate phrase c: ``q_t · E[c]``.

Option (not in the original): a learned **phrase bias** ``b`` [V] (``phrase_bias``), the score
becoming ``q_t · E[c] + b_c``. A linear function of frozen sentence-encoder vectors cannot express
how frequent a phrase is (on the sotu default the best context-free query reaches 2.42 dev bits
per byte where the unigram model of the same phrases reaches 2.32); the bias can, and is
initialised to the log unigram frequencies of the training text. It is implemented as one more
column: :attr:`phrase_table` is ``[E | b]`` and the query gets a constant 1 appended, so every
consumer of ``phrase_table`` (losses, full-table evaluation, generation) scores with the bias.

``E`` is memory-mapped from disk, copied to the device once and registered as a non-persistent
buffer, so it never enters ``state_dict()`` or a checkpoint. The decoder, its final norm and both
projections train.

A model folder (written by :meth:`ReGPT.save_pretrained`) holds

* ``config.json``: ``{"model_type": "relift-regpt", "phrase_dim", "num_phrases",
  "phrase_embeddings" (path), "llama": LlamaConfig dict}``,
* ``model.safetensors``: decoder + projections (``decoder.*``, ``proj_in.*``, ``proj_out.*``),
* the phrase tokenizer (when one was given),

and loads back in one call: ``ReGPT.from_pretrained(folder, phrase_embeddings=path)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from relift.io import InputError, atomic_dir, require_file

MODEL_TYPE = "relift-regpt"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def llama_config(
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    max_positions: int,
    kv_heads: int | None = None,
    vocab_size: int = 1,
    **extra,
):
    """A LlamaConfig for a decoder of the given size (``vocab_size`` 1: ReGPT has no token
    embedding; the baseline passes its tokenizer's size)."""
    from transformers import LlamaConfig

    if hidden % heads:
        raise InputError(f"hidden size {hidden} is not divisible by {heads} heads", field="heads")
    return LlamaConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        vocab_size=vocab_size,
        pad_token_id=None,
        bos_token_id=1 if vocab_size > 2 else None,
        eos_token_id=2 if vocab_size > 2 else None,
        tie_word_embeddings=False,
        **extra,
    )


def load_phrase_table(
    path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Memory-map ``phrases_embeddings.npy`` and copy it to ``device`` once."""
    path = require_file(path, "phrase embeddings file")
    try:
        arr = np.load(path, mmap_mode="r")
    except ValueError as err:
        raise InputError(f"not a .npy array ({err})", path=path) from None
    if arr.ndim != 2:
        raise InputError(f"expected a [phrases, dim] matrix, found shape {arr.shape}", path=path)
    t = torch.empty(arr.shape, dtype=dtype, device=device)
    step = 1 << 16  # copy in row blocks: never holds a second full copy in host memory
    for s in range(0, arr.shape[0], step):
        t[s : s + step] = torch.from_numpy(np.array(arr[s : s + step], dtype=np.float32)).to(
            device, dtype
        )
    return t


class ReGPT(nn.Module):
    """See the module docstring. ``forward`` returns the queries ``q`` [B, T, d]."""

    def __init__(
        self,
        config,
        phrase_table: torch.Tensor,
        phrase_embeddings_path: str | None = None,
        decoder: nn.Module | None = None,
        phrase_bias: bool = False,
    ):
        super().__init__()
        from transformers import LlamaModel

        if phrase_table.ndim != 2:
            raise InputError(f"phrase table must be [V, d], got {tuple(phrase_table.shape)}")
        self.config = config
        self.num_phrases, self.phrase_dim = phrase_table.shape
        self.phrase_embeddings_path = (
            str(phrase_embeddings_path) if phrase_embeddings_path else None
        )
        self.decoder = decoder if decoder is not None else LlamaModel(config)
        hidden = config.hidden_size
        self.proj_in = nn.Linear(self.phrase_dim, hidden)
        self.proj_out = nn.Linear(hidden, self.phrase_dim)
        for lin in (self.proj_in, self.proj_out):
            nn.init.normal_(lin.weight, std=config.initializer_range)
            nn.init.zeros_(lin.bias)
        self.register_buffer("phrase_emb", phrase_table, persistent=False)
        self.phrase_bias = (
            nn.Parameter(torch.zeros(self.num_phrases, device=phrase_table.device))
            if phrase_bias
            else None
        )

    @property
    def phrase_table(self) -> torch.Tensor:
        """What queries are scored against: ``E`` ``[V, d]``, or ``[E | b]`` ``[V, d + 1]``."""
        if self.phrase_bias is None:
            return self.phrase_emb
        return torch.cat([self.phrase_emb, self.phrase_bias[:, None].to(self.phrase_emb.dtype)], 1)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        phrase_embeddings: str | os.PathLike,
        *,
        hidden: int = 256,
        layers: int = 4,
        heads: int = 4,
        intermediate: int = 688,
        max_positions: int = 512,
        pretrained_decoder: str | None = None,
        device: str | torch.device = "cpu",
        phrase_bias: bool = False,
    ) -> ReGPT:
        """A fresh model from sizes, or with the decoder stack of a pretrained Llama folder."""
        table = load_phrase_table(phrase_embeddings, device)
        decoder = None
        if pretrained_decoder:
            from transformers import LlamaModel

            try:
                decoder = LlamaModel.from_pretrained(pretrained_decoder)
            except Exception as err:
                raise InputError(
                    f"cannot load a Llama decoder from {pretrained_decoder!r}: {err}"
                ) from None
            hidden = decoder.config.hidden_size
            # the token embedding is never used: shrink it to one row
            decoder.embed_tokens = nn.Embedding(1, hidden)
            decoder.config.vocab_size = 1
            decoder.config.pad_token_id = None
            config = decoder.config
        else:
            config = llama_config(hidden, layers, heads, intermediate, max_positions)
        return cls(config, table, phrase_embeddings, decoder, phrase_bias).to(device)

    # ------------------------------------------------------------------ forward
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.proj_in(nn.functional.embedding(input_ids, self.phrase_emb))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values=None,
        use_cache: bool = False,
        return_cache: bool = False,
    ):
        """Queries ``[B, T, d]``; with ``return_cache`` a tuple (queries, cache)."""
        out = self.decoder(
            inputs_embeds=self.embed(input_ids),
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=past_key_values,
            use_cache=use_cache,
        )
        q = self.proj_out(out.last_hidden_state)
        if self.phrase_bias is not None:  # the bias column of phrase_table is scored with 1
            q = torch.cat([q, torch.ones_like(q[..., :1])], -1)
        return (q, out.cache) if return_cache else q

    def score_all(self, queries: torch.Tensor) -> torch.Tensor:
        """Scores of ``queries [..., d]`` against every phrase: ``[..., V]``."""
        emb = self.phrase_emb.to(queries.dtype)
        if self.phrase_bias is None:
            return queries @ emb.T
        # = queries @ [E | b].T without building the concatenated table
        return queries[..., :-1] @ emb.T + queries[..., -1:] * self.phrase_bias.to(queries.dtype)

    def gradient_checkpointing_enable(self, **kwargs) -> None:
        kwargs = kwargs or {"use_reentrant": False}
        if hasattr(self.decoder, "activation_checkpointing_enable"):  # transformers >= 5.2x
            self.decoder.activation_checkpointing_enable(kwargs)
        else:
            self.decoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ save / load
    def relift_config(self) -> dict:
        return {
            "model_type": MODEL_TYPE,
            "phrase_dim": int(self.phrase_dim),
            "num_phrases": int(self.num_phrases),
            "phrase_embeddings": self.phrase_embeddings_path,
            "phrase_bias": self.phrase_bias is not None,
            "llama": self.config.to_dict(),
        }

    def save_to(
        self, folder: str | os.PathLike, tokenizer=None, state_dict: dict | None = None
    ) -> None:
        """Write config, weights and tokenizer into an existing folder (not atomic)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        state = state_dict if state_dict is not None else self.state_dict()
        state = {
            k: v.detach().to("cpu").contiguous() for k, v in state.items() if k != "phrase_table"
        }
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        (folder / CONFIG_NAME).write_text(json.dumps(self.relift_config(), indent=2) + "\n")
        if tokenizer is not None:
            if isinstance(tokenizer, (str, os.PathLike)):
                copy_tokenizer(tokenizer, folder)
            else:
                tokenizer.save_pretrained(str(folder))

    def save_pretrained(self, folder: str | os.PathLike, tokenizer=None) -> None:
        """Write the model folder atomically (a temporary sibling renamed on success)."""
        with atomic_dir(folder) as tmp:
            self.save_to(tmp, tokenizer)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        phrase_embeddings: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
    ) -> ReGPT:
        from safetensors.torch import load_file
        from transformers import LlamaConfig

        folder = Path(folder)
        cfg = read_config(folder)
        path = phrase_embeddings or cfg.get("phrase_embeddings")
        if not path:
            raise InputError(
                "no phrase embeddings given and none recorded in config.json",
                path=folder / CONFIG_NAME,
            )
        table = load_phrase_table(path, device)
        if tuple(table.shape) != (cfg["num_phrases"], cfg["phrase_dim"]):
            raise InputError(
                f"phrase table has shape {tuple(table.shape)} but the model was trained "
                f"on [{cfg['num_phrases']}, {cfg['phrase_dim']}]",
                path=path,
            )
        model = cls(
            LlamaConfig(**cfg["llama"]), table, path, phrase_bias=cfg.get("phrase_bias", False)
        )
        weights = require_file(folder / WEIGHTS_NAME, "model weights")
        state = load_file(str(weights))
        own = model.state_dict()
        for name, tensor in state.items():  # a checkpoint of another model size
            if name in own and tuple(own[name].shape) != tuple(tensor.shape):
                raise InputError(
                    f"weights of another model size: {name} has shape {tuple(tensor.shape)} "
                    f"but {CONFIG_NAME} asks for {tuple(own[name].shape)}",
                    path=weights,
                )
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k not in ("phrase_table", "phrase_emb")]
        if missing or unexpected:
            raise InputError(
                f"weights do not match the config (missing {missing[:3]}, unexpected "
                f"{unexpected[:3]})",
                path=folder / WEIGHTS_NAME,
            )
        return model.to(device).eval()


_CONFIG_CLASS = None


def register_config():
    """Register a transformers config class for ``model_type`` ``relift-regpt`` with AutoConfig
    (once per process) and return it. AutoTokenizer reads a model folder's config.json; without
    the registration it falls back to the base class (model_type ``""``) and warns "You are using a
    model of type `relift-regpt` to instantiate a model of type ``"."""
    global _CONFIG_CLASS
    if _CONFIG_CLASS is None:
        from transformers import AutoConfig, PretrainedConfig

        class ReGPTConfig(PretrainedConfig):
            """config.json of a ReGPT folder: phrase_dim, num_phrases, phrase_embeddings,
            phrase_bias and the Llama decoder's config under ``llama``."""

            model_type = MODEL_TYPE

        AutoConfig.register(MODEL_TYPE, ReGPTConfig, exist_ok=True)
        _CONFIG_CLASS = ReGPTConfig
    return _CONFIG_CLASS


def load_tokenizer(folder: str | os.PathLike):
    """The tokenizer of a model or tokenizer folder (ReGPT, the token LM, the phrase tokenizer),
    read with ReGPT's and the biased token LM's config classes registered (no model-type warning,
    no unknown model type)."""
    from transformers import AutoTokenizer

    from relift.regpt.token_lm import register

    register_config()
    register()
    return AutoTokenizer.from_pretrained(str(folder))


def read_config(folder: str | os.PathLike) -> dict:
    path = require_file(Path(folder) / CONFIG_NAME, "model config")
    cfg = json.loads(path.read_text())
    if cfg.get("model_type") != MODEL_TYPE:
        raise InputError(
            f"not a ReGPT model folder (model_type {cfg.get('model_type')!r})", path=path
        )
    return cfg


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "added_tokens.json",
)


def copy_tokenizer(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    import shutil

    src = Path(src)
    found = False
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copyfile(src / name, Path(dst) / name)
            found = True
    if not found:
        raise InputError("no tokenizer files found", path=src)
