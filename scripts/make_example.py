"""Regenerate examples/example.mf, the repository's example model (random weights, seed 0)."""

from pathlib import Path

from mulfree.gen.model.examples import example_model
from mulfree.gen.model.format import save

if __name__ == "__main__":
    path = save(example_model(0), Path(__file__).resolve().parents[1] / "examples" / "example.mf")
    print(f"wrote {path}")
