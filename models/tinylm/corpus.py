"""The training text of tinylm: short stories about a river valley, written
by a small seeded grammar (so the repo holds the generator, not the text).

    /usr/bin/python3 models/tinylm/corpus.py --stories=3 --seed=1

prints three stories. train.py calls stories() directly, plus the charlm
corpus (models/charlm/corpus.txt) as extra stories.
"""

import argparse
import random
from typing import List

PEOPLE = [
    ("the miller", "he"), ("the ferryman", "he"), ("the baker", "she"),
    ("the old shepherd", "he"), ("the girl from the mill", "she"), ("the carpenter", "he"),
    ("the weaver", "she"), ("the boy with the red cap", "he"), ("the fisherman", "he"),
    ("the teacher", "she"), ("the blacksmith", "he"), ("the farmer's wife", "she"),
]
PLACES = [
    "the mill", "the bridge", "the upper field", "the village square", "the old wall",
    "the ferry landing", "the orchard", "the narrow lane", "the pond above the weir",
    "the chapel by the ford", "the market", "the edge of the wood",
]
THINGS = [
    "a basket of apples", "a coil of rope", "a sack of flour", "a lantern", "a loaf of bread",
    "a wooden bucket", "a letter", "a bundle of reeds", "a small boat", "a jar of honey",
    "a new wheel", "a warm coat",
]
TIMES = [
    "In the morning", "At noon", "Late in the afternoon", "Before the sun came up",
    "When the bells rang", "After the rain", "On the first day of spring", "That evening",
    "In the middle of the night", "On market day",
]
WEATHER = [
    "the river was high and brown", "a cold wind came down from the hills",
    "the sky was clear and the water shone", "rain had fallen all night",
    "fog lay on the meadows", "the air smelled of wet grass", "the ice on the pond was thin",
    "the wheel of the mill turned slowly", "the sluice stood half open",
]
MOVES = ["walked", "hurried", "went", "ran", "climbed", "wandered", "rode"]
ACTIONS = [
    "opened the sluice", "closed the gate", "mended the fence", "counted the sacks",
    "watched the water", "swept the floor", "fed the geese", "lit the lantern",
    "tied the boat to the post", "sang an old song", "carried water to the garden",
    "read the letter twice",
]
FEELINGS = ["glad", "tired", "worried", "curious", "calm", "cold", "hungry", "proud"]
SAYINGS = [
    "The water knows the way", "Close the gate before dark", "Nothing downstream is wasted",
    "The river will fall by Sunday", "Bring the lantern with you", "Wait for the bells",
    "The wheel needs oil", "Keep the race clear of leaves",
]
ENDINGS = [
    "and the valley was quiet again", "and the river ran on toward the sea",
    "and the mill wheel turned through the night", "and everyone slept well",
    "and the water stayed behind the gate until morning",
]


def capital(s: str) -> str:
    return s[0].upper() + s[1:]


def sentence(rng: random.Random, person, other) -> str:
    name, pronoun = person
    kind = rng.randrange(9)
    if kind == 0:
        return f"{rng.choice(TIMES)}, {rng.choice(WEATHER)}."
    if kind == 1:
        return f"{capital(name)} {rng.choice(MOVES)} to {rng.choice(PLACES)}."
    if kind == 2:
        return f"{capital(pronoun)} {rng.choice(ACTIONS)} and felt {rng.choice(FEELINGS)}."
    if kind == 3:
        return (f"{capital(name)} met {other[0]} at {rng.choice(PLACES)} and gave "
                f"{'him' if other[1] == 'he' else 'her'} {rng.choice(THINGS)}.")
    if kind == 4:
        return f"\"{rng.choice(SAYINGS)},\" said {name}."
    if kind == 5:
        return (f"{capital(other[0])} asked where the {rng.choice(['water', 'boat', 'flour', 'key'])} "
                f"had gone, and {name} pointed toward {rng.choice(PLACES)}.")
    if kind == 6:
        return f"{rng.choice(TIMES)}, {pronoun} {rng.choice(ACTIONS)}."
    if kind == 7:
        return f"{capital(name)} carried {rng.choice(THINGS)} past {rng.choice(PLACES)}."
    return f"{capital(pronoun)} was {rng.choice(FEELINGS)}, because {rng.choice(WEATHER)}."


def story(rng: random.Random) -> str:
    person, other = rng.sample(PEOPLE, 2)
    paragraphs = []
    for _ in range(rng.randint(2, 4)):
        paragraphs.append(" ".join(sentence(rng, person, other) for _ in range(rng.randint(3, 6))))
    paragraphs.append(f"{rng.choice(TIMES)}, {person[0]} went home, {rng.choice(ENDINGS)}.")
    return "\n\n".join(paragraphs)


def stories(count: int, seed: int) -> List[str]:
    rng = random.Random(seed)
    return [story(rng) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stories", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print("\n\n---\n\n".join(stories(args.stories, args.seed)))


if __name__ == "__main__":
    main()
