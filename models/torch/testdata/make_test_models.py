#!/usr/bin/python3
"""Writes the TorchScript files the tests load, in a few seconds: small
randomly initialised language models in float64 (so that a batch and a
sequence run alone agree to the last bits that could change a choice) and
files that break the contract in one way each.

    make_test_models.py --tinylm=models/tinylm/model.py --out_dir=DIR

  tiny_lm.pt          tinylm's architecture, 2 layers of width 16, context 48
  tiny_gru.pt         a GRU language model: its cache is a recurrent state
                      [1, layers, hidden], and it returns a new one each call
  fixed_text.pt       continues FIXED_TEXT whatever the prompt: the token after
                      position p is byte p + 1 of it, then end of text; context 64
  fixed_long.pt       the same with a text longer than its context of 64
  no_decode.pt        lacks decode()
  bad_logits.pt       prefill returns logits [1, V + 1]
  bad_cache.pt        decode returns a cache of another shape
  small_vocab.pt      vocab_size() is 100
  not_torchscript.pt  text, not a TorchScript file
"""

import argparse
import importlib.util
import os
from typing import Tuple

import torch
from torch import nn


def load_tinylm(path):
    spec = importlib.util.spec_from_file_location("tinylm_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TinyGru(nn.Module):
    """A recurrent language model under the same contract."""

    def __init__(self, hidden: int = 24, layers: int = 2, context: int = 64):
        super().__init__()
        self.hidden = hidden
        self.layers = layers
        self.context = context
        self.embed = nn.Embedding(257, hidden)
        self.gru = nn.GRU(hidden, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, 257)

    @torch.jit.export
    def vocab_size(self) -> int:
        return 257

    @torch.jit.export
    def eos_token(self) -> int:
        return 256

    @torch.jit.export
    def max_len(self) -> int:
        return self.context

    @torch.jit.export
    def new_cache(self) -> torch.Tensor:
        return torch.zeros(1, self.layers, self.hidden, dtype=self.head.weight.dtype)

    @torch.jit.export
    def prefill(self, tokens: torch.Tensor, start: int,
                cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out, state = self.gru(self.embed(tokens), cache.transpose(0, 1).contiguous())
        return self.head(out[:, -1]), state.transpose(0, 1)

    @torch.jit.export
    def decode(self, tokens: torch.Tensor, positions: torch.Tensor,
               cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        out, state = self.gru(self.embed(tokens).unsqueeze(1), cache.transpose(0, 1).contiguous())
        return self.head(out[:, 0]), state.transpose(0, 1)


# 60 bytes, with characters of two and three bytes in UTF-8.
FIXED_TEXT = "Once upon a time, a caf\u00e9 \u2192 a na\u00efve fox ran off. The end."


class FixedText(nn.Module):
    """Predicts byte p + 1 of its text after position p, for certain (a logit
    of 30 against 0), then the end-of-text token."""

    def __init__(self, text: bytes, context: int = 64):
        super().__init__()
        ids = list(text) + [256] * max(0, context + 1 - len(text))
        self.register_buffer("next_ids", torch.tensor(ids[1:context + 1], dtype=torch.long))
        self.context = context

    @torch.jit.export
    def vocab_size(self) -> int:
        return 257

    @torch.jit.export
    def eos_token(self) -> int:
        return 256

    @torch.jit.export
    def max_len(self) -> int:
        return self.context

    @torch.jit.export
    def new_cache(self) -> torch.Tensor:
        return torch.zeros(1, 1)

    def logits(self, positions: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(positions.shape[0], 257)
        out[torch.arange(positions.shape[0]), self.next_ids[positions]] = 30.0
        return out

    @torch.jit.export
    def prefill(self, tokens: torch.Tensor, start: int,
                cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.logits(torch.tensor([start + tokens.shape[1] - 1])), cache

    @torch.jit.export
    def decode(self, tokens: torch.Tensor, positions: torch.Tensor,
               cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.logits(positions), cache


class NoDecode(nn.Module):
    @torch.jit.export
    def vocab_size(self) -> int:
        return 257

    @torch.jit.export
    def eos_token(self) -> int:
        return 256

    @torch.jit.export
    def max_len(self) -> int:
        return 16

    @torch.jit.export
    def new_cache(self) -> torch.Tensor:
        return torch.zeros(1, 4)

    @torch.jit.export
    def prefill(self, tokens: torch.Tensor, start: int,
                cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(1, 257), cache


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tinylm", required=True, help="models/tinylm/model.py")
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args()
    tinylm = load_tinylm(args.tinylm)

    class BadLogits(tinylm.TinyLM):
        @torch.jit.export
        def prefill(self, tokens: torch.Tensor, start: int,
                    cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            return torch.zeros(1, 258, dtype=cache.dtype), cache

    class BadCache(tinylm.TinyLM):
        @torch.jit.export
        def decode(self, tokens: torch.Tensor, positions: torch.Tensor,
                   cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            return torch.zeros(tokens.shape[0], 257, dtype=cache.dtype), cache[:, :1]

    class SmallVocab(tinylm.TinyLM):
        @torch.jit.export
        def vocab_size(self) -> int:
            return 100

    def save(model, name):
        model.eval()
        torch.jit.script(model).save(os.path.join(args.out_dir, name))

    small = dict(d_model=16, layers=2, heads=2, context=48)
    torch.manual_seed(7)
    save(tinylm.TinyLM(**small).double(), "tiny_lm.pt")
    torch.manual_seed(8)
    save(TinyGru().double(), "tiny_gru.pt")
    save(FixedText(FIXED_TEXT.encode("utf-8")), "fixed_text.pt")
    save(FixedText((FIXED_TEXT * 2).encode("utf-8")), "fixed_long.pt")
    save(NoDecode(), "no_decode.pt")
    save(BadLogits(**small), "bad_logits.pt")
    save(BadCache(**small), "bad_cache.pt")
    save(SmallVocab(**small), "small_vocab.pt")
    with open(os.path.join(args.out_dir, "not_torchscript.pt"), "w") as f:
        f.write("This is a text file, not a TorchScript archive.\n")


if __name__ == "__main__":
    main()
