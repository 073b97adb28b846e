"""Write FINN's CNV topology (random weights, seeded) as a mulfree model file.

    .venv/bin/python scripts/make_cnv.py -o cnv.mf                   # full CNV, w1a1
    .venv/bin/python scripts/make_cnv.py -o cnv.mf --bits 2          # w2a2
    .venv/bin/python scripts/make_cnv.py -o small.mf --small         # the CI's scaled-down CNV
    .venv/bin/python scripts/make_cnv.py -o acc.mf --last acc        # accumulators out

No trained CNV is at hand and training CIFAR-10 on this machine is out of reach, so the
weights are random; see mulfree.gen.model.cnv for how the thresholds are set.
"""

from __future__ import annotations

import argparse
import sys
import time

from mulfree.gen.model.cnv import CNV_FULL, CNV_SMALL, cnv_model, cnv_weight_count
from mulfree.gen.model.format import save


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="model file to write (.mf)")
    ap.add_argument("--bits", type=int, choices=(1, 2), default=1,
                    help="weight and activation bits (1: w1a1, 2: w2a2)")
    ap.add_argument("--small", action="store_true", help="the scaled-down CNV the CI checks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--last", choices=("argmax", "acc"), default="argmax",
                    help="the last layer's output: the class (FINN's top-1) or the 10 "
                         "accumulators (every bit of them checked by mulfree sim)")
    args = ap.parse_args(argv)
    shape = CNV_SMALL if args.small else CNV_FULL
    t = time.monotonic()
    print(f"make_cnv: {cnv_weight_count(shape):,} weights, w{args.bits}a{args.bits}, "
          f"calibrating thresholds ...", file=sys.stderr, flush=True)
    model = cnv_model(shape, wbits=args.bits, abits=args.bits, seed=args.seed,
                      output=args.last)
    path = save(model, args.output)
    print(f"wrote {path} ({time.monotonic() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
