#!/usr/bin/env python3
"""Generate an N-step pipeline (and an equivalent justfile and Makefile) for
the check benchmark. The DAG is both wide and deep: steps come in layers of
`width`; each needs 1-3 steps of earlier layers, and uses an output of one.

usage: gen_pipeline.py N OUTDIR [--width W] [--seed S]
writes OUTDIR/pipeline.topsail, OUTDIR/justfile, OUTDIR/Makefile
"""
import argparse
import os
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--width", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.outdir, exist_ok=True)
    names = [f"step-{i}" for i in range(a.n)]
    needs = []
    for i in range(a.n):
        layer = i // a.width
        if layer == 0:
            needs.append([])
            continue
        lo = max(0, (layer - 3) * a.width)
        hi = layer * a.width
        k = rng.randint(1, 3)
        needs.append(sorted(set(rng.randrange(lo, hi) for _ in range(k))))

    with open(os.path.join(a.outdir, "pipeline.topsail"), "w") as f:
        f.write(f"pipeline bench\n\nparam region = \"us-east-1\"\nparam replicas: int = 3\n")
        f.write("image \"alpine:3.20\"\nenv LOG_LEVEL = \"info\"\n")
        for i, name in enumerate(names):
            f.write(f"\n{name}: {' '.join(names[j] for j in needs[i])}\n".replace(": \n", ":\n"))
            f.write("    timeout 10m\n")
            if i % 7 == 0:
                f.write("    retry 2 every 5s backoff 2.0\n")
            f.write("    output OUT\n")
            f.write(f"    env STEP_INDEX = \"{i}\"\n")
            f.write("    run:\n")
            if needs[i]:
                f.write(f"        echo \"from {{{{ {names[needs[i][0]]}.OUT }}}} in {{{{ region }}}}\"\n")
            else:
                f.write("        echo \"start in {{ region }} x{{ replicas }}\"\n")
            f.write(f"        echo \"OUT=v{i}\" >> \"$TOPSAIL_OUTPUT\"\n")

    with open(os.path.join(a.outdir, "justfile"), "w") as f:
        f.write("region := \"us-east-1\"\nreplicas := \"3\"\n")
        for i, name in enumerate(names):
            f.write(f"\n{name}: {' '.join(names[j] for j in needs[i])}\n".replace(": \n", ":\n"))
            f.write(f"    echo \"step {i} in {{{{region}}}} x{{{{replicas}}}}\"\n")
            f.write(f"    echo \"OUT=v{i}\" >> out.txt\n")

    with open(os.path.join(a.outdir, "Makefile"), "w") as f:
        f.write("REGION := us-east-1\nREPLICAS := 3\n.PHONY: all\nall: " + " ".join(names[-a.width:]) + "\n")
        for i, name in enumerate(names):
            f.write(f"\n.PHONY: {name}\n{name}: {' '.join(names[j] for j in needs[i])}\n")
            f.write(f"\techo \"step {i} in $(REGION) x$(REPLICAS)\"\n")
            f.write(f"\techo \"OUT=v{i}\" >> out.txt\n")


if __name__ == "__main__":
    main()
