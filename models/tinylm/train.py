#!/usr/bin/python3
"""Trains tinylm (models/tinylm/model.py) on the repo's own text and exports
it to TorchScript for sluice.

    flock -s /work/notes/cpu.lock /usr/bin/python3 models/tinylm/train.py \\
        --out=models/tinylm/tinylm.pt

(the command that produced the committed models/tinylm/tinylm.pt; tools/serve
runs it when that file is absent). The text: stories written by corpus.py's
seeded grammar plus the charlm corpus, each followed by the end-of-text token.
Training stops after --steps or --max_seconds, whichever comes first, printing
a progress line every --log_every steps; then the loss on held-out stories is
measured, the cache path is checked against the training path, and the model
is saved with torch.jit.script.
"""

import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import model as tinylm  # noqa: E402


def encode(texts):
    """Bytes of each text followed by the end-of-text token, concatenated."""
    ids = []
    for text in texts:
        ids.extend(text.encode("utf-8"))
        ids.append(tinylm.EOS)
    return torch.tensor(ids, dtype=torch.long)


def batches(data, batch, length, generator):
    """Random windows of length+1 tokens: inputs and next-token targets."""
    starts = torch.randint(0, len(data) - length - 1, (batch,), generator=generator)
    windows = torch.stack([data[s:s + length + 1] for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]


def mean_loss(model, data, length):
    """Mean next-token loss (nats per token) over consecutive windows of data."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data) - length - 1, length):
            window = data[start:start + length + 1].unsqueeze(0)
            logits = model(window[:, :-1])
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1),
                reduction="sum").item()
            count += length
    model.train()
    return total / max(count, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="where to write the TorchScript file")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--max_seconds", type=float, default=420)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=256, help="training window (= context)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--stories", type=int, default=800)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log_every", type=int, default=25)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "charlm", "corpus.txt"), encoding="utf-8") as f:
        extra = [p.strip() for p in f.read().split("\n\n") if p.strip()]
    texts = corpus.stories(args.stories, args.seed) + extra
    held_out = corpus.stories(40, args.seed + 1000)
    data, eval_data = encode(texts), encode(held_out)
    print(f"tinylm: {len(data)} training tokens, {len(eval_data)} held out", file=sys.stderr)

    model = tinylm.TinyLM(context=args.length)
    print(f"tinylm: {tinylm.parameter_count(model)} parameters", file=sys.stderr)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)
    warmup = 30
    start = time.monotonic()
    step, smoothed = 0, None
    while step < args.steps and time.monotonic() - start < args.max_seconds:
        # Linear warm-up, then cosine decay to a tenth over the planned steps.
        progress = min(step / args.steps, 1.0)
        scale = min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * scale
        inputs, targets = batches(data, args.batch, args.length, generator)
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        smoothed = loss.item() if smoothed is None else 0.9 * smoothed + 0.1 * loss.item()
        if step % args.log_every == 0 or step == 1:
            print(f"tinylm: step {step}/{args.steps} loss {smoothed:.3f} "
                  f"({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
    seconds = time.monotonic() - start

    model.eval()
    held = mean_loss(model, eval_data, args.length)
    drift = tinylm.check_cache_matches_forward(model, list(b"The miller walked to the mill."))
    if drift > 1e-3:
        sys.exit(f"tinylm: the cache path disagrees with the training path by {drift}")
    tmp = args.out + ".tmp"
    tinylm.export(model, tmp)
    os.replace(tmp, args.out)
    print(f"tinylm: {step} steps in {seconds:.0f} s; training loss {smoothed:.3f}, held-out loss "
          f"{held:.3f} nats/byte ({held / math.log(2):.2f} bits); wrote {args.out} "
          f"({os.path.getsize(args.out) / 2**20:.1f} MiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
