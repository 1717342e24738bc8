"""How many images per second the input pipeline delivers, with nothing consuming them.

The training benchmark compares this with what a training step consumes; the pipeline
should deliver comfortably more, so the model never waits for data.

Example:
    $ python -m zoo.data.throughput camvid --input-size 224x288 --batch-size 8
    camvid train 224x288 batch 8 augment=default: 231.4 images/s (60 batches, 2 CPUs)
    >>> measure_throughput(make_dataset(spec, "train", (224, 288), 8, augment={},
    ...                                 repeat=True), batches=60)
    231.4
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def measure_throughput(dataset, batches: int = 60, warmup: int = 5) -> float:
    """Images per second over `batches` batches, after `warmup` batches (tracing, caches).

    The dataset must yield at least warmup + batches batches (use repeat=True).

    Example:
        >>> measure_throughput(ds, batches=20)
        215.0
    """
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    count = 0
    start = time.perf_counter()
    for _ in range(batches):
        images, _ = next(iterator)
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the throughput of one dataset split; exit 2 on a user error."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from zoo.data.pipeline import make_dataset
    from zoo.data.spec import resolve_dataset
    from zoo.errors import ZooError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default="shapes", help="yaml name, yaml or folder")
    parser.add_argument("--split", default="train")
    parser.add_argument("--input-size", default="224x288", help="HxW, e.g. 224x288 or 128")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--no-augment", action="store_true", help="resize only")
    args = parser.parse_args(argv)
    try:
        parts = [int(v) for v in args.input_size.lower().split("x")]
        size = (parts[0], parts[-1])
        spec = resolve_dataset(args.data)
        augment = None if args.no_augment else {}
        ds = make_dataset(spec, args.split, size, args.batch_size, augment=augment,
                          shuffle=True, seed=0, repeat=True)
        rate = measure_throughput(ds, batches=args.batches)
    except (ZooError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{spec.name} {args.split} {size[0]}x{size[1]} batch {args.batch_size} "
          f"augment={'none' if args.no_augment else 'default'}: {rate:.1f} images/s "
          f"({args.batches} batches, {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
