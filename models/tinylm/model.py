"""TinyLM: a small byte-level decoder-only transformer that follows sluice's
TorchScript language-model contract (README, "Serving a TorchScript language
model"), so that sluice can serve it batched, token by token.

The contract, as this module implements it:

  vocab_size() -> int        V: ids 0..255 are the bytes 0..255; 256 is end of text.
  eos_token() -> int         256.
  max_len() -> int           L: the context, positions 0..L-1.
  new_cache() -> Tensor      one sequence's empty KV cache, [1, layers, 2, L, d_model].
  prefill(tokens [1, T] int64, start: int, cache [1, ...])
      -> (logits [1, V], cache)  runs a chunk of the prompt at positions
                                 start..start+T-1 and returns the logits of its last token.
  decode(tokens [B] int64, positions [B] int64, cache [B, ...])
      -> (logits [B, V], cache)  one token for each of B sequences, each at its
                                 own position.

Both write the cache in place and return it, so the server never copies it.
forward(tokens [B, T]) -> logits [B, T, V] is the training path (no cache).
"""

import math
from typing import List, Tuple

import torch
from torch import nn

EOS = 256
VOCAB = 257


class Block(nn.Module):
    """One pre-norm transformer block: causal self-attention, then an MLP."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = d_model // heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model))

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        # [B, T, d] -> [B, heads, T, head_dim]
        b, t, _ = x.shape
        return x.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               allowed: torch.Tensor) -> torch.Tensor:
        # q [B, T, d]; k, v [B, S, d]; allowed [B or 1, T, S] (True: may attend).
        qh, kh, vh = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        out = torch.softmax(scores, dim=-1) @ vh  # [B, heads, T, head_dim]
        b, _, t, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, t, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        allowed = torch.ones(t, t, dtype=torch.bool, device=x.device).tril().unsqueeze(0)
        x = x + self.attend(q, k, v, allowed)
        return x + self.mlp(self.norm2(x))

    def prefill(self, x: torch.Tensor, start: int, kv: torch.Tensor) -> torch.Tensor:
        # x [1, T, d] at positions start..start+T-1; kv [1, 2, L, d], written in place.
        t = x.shape[1]
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        kv[:, 0, start:start + t] = k
        kv[:, 1, start:start + t] = v
        end = start + t
        # Query i (position start+i) sees keys 0..start+i.
        allowed = torch.ones(t, end, dtype=torch.bool, device=x.device).tril(start).unsqueeze(0)
        x = x + self.attend(q, kv[:, 0, :end], kv[:, 1, :end], allowed)
        return x + self.mlp(self.norm2(x))

    def decode(self, x: torch.Tensor, positions: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        # x [B, 1, d]; each sequence at its own position; kv [B, 2, L, d], written in place.
        b = x.shape[0]
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        rows = torch.arange(b, device=x.device)
        keys, values = kv.select(1, 0), kv.select(1, 1)
        keys[rows, positions] = k.squeeze(1)
        values[rows, positions] = v.squeeze(1)
        # Only the part of the cache some sequence of the batch has reached.
        end = int(positions.max()) + 1
        # One query per sequence: elementwise products over the cache (read
        # where it lies, in place) beat many tiny matrix products.
        kh = keys[:, :end].reshape(b, end, self.heads, self.head_dim)
        vh = values[:, :end].reshape(b, end, self.heads, self.head_dim)
        qh = q.reshape(b, 1, self.heads, self.head_dim)
        scores = (kh * qh).sum(-1) / math.sqrt(self.head_dim)  # [B, end, heads]
        allowed = torch.arange(end, device=x.device).unsqueeze(0) <= positions.unsqueeze(1)
        scores = scores.masked_fill(~allowed.unsqueeze(2), float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(3)  # [B, end, heads, 1]
        out = (weights * vh).sum(1).reshape(b, 1, -1)
        x = x + self.proj(out)
        return x + self.mlp(self.norm2(x))


class TinyLM(nn.Module):

    def __init__(self, d_model: int = 128, layers: int = 4, heads: int = 4, context: int = 256):
        super().__init__()
        self.d_model = d_model
        self.layers = layers
        self.context = context
        self.vocab = VOCAB
        self.eos = EOS
        self.embed = nn.Embedding(VOCAB, d_model)
        self.position = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList([Block(d_model, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, VOCAB, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.embed(tokens) + self.position(torch.arange(t, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))

    @torch.jit.export
    def vocab_size(self) -> int:
        return self.vocab

    @torch.jit.export
    def eos_token(self) -> int:
        return self.eos

    @torch.jit.export
    def max_len(self) -> int:
        return self.context

    @torch.jit.export
    def new_cache(self) -> torch.Tensor:
        w = self.embed.weight
        return torch.zeros(1, self.layers, 2, self.context, self.d_model, dtype=w.dtype,
                           device=w.device)

    @torch.jit.export
    def prefill(self, tokens: torch.Tensor, start: int,
                cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        t = tokens.shape[1]
        positions = torch.arange(start, start + t, device=tokens.device)
        x = self.embed(tokens) + self.position(positions)
        i = 0
        for block in self.blocks:
            x = block.prefill(x, start, cache[:, i])
            i += 1
        return self.head(self.norm(x[:, -1])), cache

    @torch.jit.export
    def decode(self, tokens: torch.Tensor, positions: torch.Tensor,
               cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = (self.embed(tokens) + self.position(positions)).unsqueeze(1)
        i = 0
        for block in self.blocks:
            x = block.decode(x, positions, cache[:, i])
            i += 1
        return self.head(self.norm(x[:, 0])), cache


def export(model: TinyLM, path: str) -> None:
    """Saves `model` as TorchScript with the contract's methods."""
    model.eval()
    torch.jit.script(model).save(path)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_cache_matches_forward(model: TinyLM, tokens: List[int]) -> float:
    """The largest difference between forward's logits and those of prefill
    followed by decode, one token at a time: a self-check of the cache."""
    with torch.no_grad():
        full = model(torch.tensor([tokens]))[0]
        cache = model.new_cache()
        logits, cache = model.prefill(torch.tensor([tokens[:1]]), 0, cache)
        worst = (logits[0] - full[0]).abs().max().item()
        for i in range(1, len(tokens)):
            logits, cache = model.decode(torch.tensor([tokens[i]]), torch.tensor([i]), cache)
            worst = max(worst, (logits[0] - full[i]).abs().max().item())
    return worst
