#!/usr/bin/python3
"""The peer of sluice's TorchScript benchmark: the same TorchScript file
driven by the loop a Python user would write (prefill the prompt, then one
decode per token, greedy), in one process with no server. With --batch=N, N
copies of the prompt are prefilled one by one and then decoded together, one
decode call per token for all N: what the model itself gains from batching.
Prints one line:

    tokens_per_s=<median over reps> first_token_ms=<median> cpu_us_per_token=<median>
        reps=<n> tokens=<n>

    torch_peer.py --model=models/tinylm/tinylm.pt --prompt='The river' --tokens=200
"""

import argparse
import statistics
import time

import torch


def generate(model, prompt: bytes, tokens: int, batch: int):
    """Greedy generation for `batch` copies of the prompt; (seconds to the
    first token, seconds in all, tokens generated per sequence)."""
    start = time.perf_counter()
    with torch.inference_mode():
        caches, last = [], []
        for _ in range(batch):
            logits, cache = model.prefill(torch.tensor([list(prompt)]), 0, model.new_cache())
            caches.append(cache)
            last.append(logits)
        cache = torch.cat(caches) if batch > 1 else caches[0]
        token = torch.cat(last).argmax(-1)
        first = time.perf_counter() - start
        count = 1
        position = len(prompt)
        while count < tokens and position < model.max_len():
            logits, cache = model.decode(token, torch.full((batch,), position), cache)
            token = logits.argmax(-1)
            count += 1
            position += 1
    return first, time.perf_counter() - start, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompt", default="The river")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = torch.jit.load(args.model)
    model.eval()
    prompt = args.prompt.encode()
    generate(model, prompt, args.tokens, args.batch)  # warm-up (TorchScript optimises first runs)
    rates, firsts, cpus, count = [], [], [], 0
    for _ in range(args.reps):
        cpu = time.process_time()
        first, total, count = generate(model, prompt, args.tokens, args.batch)
        cpus.append((time.process_time() - cpu) * 1e6 / (count * args.batch))
        rates.append(count * args.batch / total)
        firsts.append(first * 1e3)
    print(f"tokens_per_s={statistics.median(rates):.1f} "
          f"first_token_ms={statistics.median(firsts):.3f} "
          f"cpu_us_per_token={statistics.median(cpus):.1f} reps={args.reps} tokens={count}")


if __name__ == "__main__":
    main()
