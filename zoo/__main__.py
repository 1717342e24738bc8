"""`python -m zoo list | check | summary`: what the zoo has, and what each target maps badly.

Examples::

    python -m zoo list
    python -m zoo check --arch mobilenet_v3_large_lraspp --target edgetpu
    python -m zoo summary --alphas 1.0,0.5 --input-size 224

Arguments are checked before anything is built: a bad one is ``error: ...`` naming it, exit 2.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from zoo import checks
from zoo.cli import run
from zoo.errors import ConfigError


def list_models() -> None:
    """Print the registered archs, backbones (with allowed alphas) and heads."""
    from zoo.backbones import BACKBONES
    from zoo.heads import HEADS
    from zoo.models import ARCHS

    print("archs:")
    for name in ARCHS.list():
        spec = ARCHS.get(name)
        print(f"  {name:36s} {spec.backbone} + {spec.head}  {spec.description}")
    print("backbones:")
    for name in BACKBONES.list():
        spec = BACKBONES.get(name)
        opts = f"  options: {', '.join(spec.options)}" if spec.options else ""
        print(f"  {name:36s} alpha {spec.alphas}{opts}")
    print("heads:")
    for name in HEADS.list():
        print(f"  {name:36s} options: {', '.join(HEADS.get(name).options)}")


def check(target: str, arch: str | None = None, backbone: str | None = None,
          head: str | None = None, alpha: float = 1.0, input_size: Any = 224,
          **options: Any) -> None:
    """Report the layers of a model that `target` (coreml, edgetpu, tflite-gpu) maps badly.

    Args:
        target: coreml, edgetpu or tflite-gpu.
        arch: a named arch (`python -m zoo list`), or give --backbone and --head.
        backbone: backbone name, to pair with --head or swap into --arch.
        head: head name.
        alpha: width multiplier.
        input_size: N or HxW, multiples of 32.
        **options: backbone/head options, e.g. --minimalistic --upsample resize.
    """
    import zoo
    from zoo.backbones import BACKBONES
    from zoo.capabilities import TARGETS
    from zoo.models import resolve_arch

    target = checks.choice("--target", target, TARGETS)
    alpha = BACKBONES.get(resolve_arch(arch, backbone, head).backbone).check_alpha(alpha,
                                                                                   "--alpha")
    input_size = checks.input_size("--input-size", input_size)
    model = zoo.build_model(arch, backbone, head, alpha=alpha, input_size=input_size, **options)
    findings = zoo.check(model, target)
    if not findings:
        print(f"{model.name}: every layer maps to {target}")
        return
    print(f"{model.name}: {len(findings)} layer(s) map badly to {target}")
    for op, count in Counter(f.op for f in findings).items():
        first = next(f for f in findings if f.op == op)
        layers = [f.layer for f in findings if f.op == op]
        shown = ", ".join(layers[:4]) + (", ..." if len(layers) > 4 else "")
        print(f"  {op} x{count} ({shown}): {first.reason}")
        print(f"    use: {first.alternative}")


def summary(alphas: Any = (1.0, 0.5), input_size: Any = 224, num_classes: int = 2,
            pattern: str = "*") -> None:
    """Build every named arch and print parameters, MACs and Edge TPU findings.

    Args:
        alphas: width multipliers, e.g. 1.0,0.5.
        input_size: N or HxW, multiples of 32.
        num_classes: classes of the output.
        pattern: glob over arch names.
    """
    import keras

    import zoo
    from zoo.backbones import BACKBONES
    from zoo.models import resolve_arch

    alphas = checks.each("--alphas", alphas, lambda n, v: checks.number(n, v, 0, low_open=True))
    input_size = checks.input_size("--input-size", input_size)
    num_classes = checks.integer("--num-classes", num_classes, 1)
    archs = zoo.list_archs(str(pattern))
    if not archs:
        raise ConfigError(f"--pattern {pattern!r} matches no arch; see python -m zoo list")
    for arch in archs:  # every pairing is allowed before the first is built
        for alpha in alphas:
            BACKBONES.get(resolve_arch(arch).backbone).check_alpha(alpha, "--alphas")
    print(f"input {input_size[0]}x{input_size[1]}, {num_classes} classes; MACs = "
          "multiply-accumulates of conv/dense layers counted from the graph (zoo.stats)")
    print(f"| {'arch':34s} | alpha | params (M) | MACs (G) | {'Edge TPU findings':40s} | build s |")
    print(f"|{'-' * 36}|-------|------------|----------|{'-' * 42}|---------|")
    for arch in archs:
        for alpha in alphas:
            keras.backend.clear_session()
            start = time.perf_counter()
            model = zoo.build_model(arch, alpha=alpha, input_size=input_size,
                                    num_classes=num_classes)
            seconds = time.perf_counter() - start
            findings = Counter(f.op for f in zoo.check(model, "edgetpu"))
            text = ", ".join(f"{k} x{v}" for k, v in sorted(findings.items())) or "none"
            print(f"| {arch:34s} | {alpha:5} | {zoo.count_params(model) / 1e6:10.2f} | "
                  f"{zoo.count_macs(model) / 1e9:8.3f} | {text[:40]:40s} | {seconds:7.1f} |")


def main() -> None:
    run({"list": list_models, "check": check, "summary": summary}, name="python -m zoo")


if __name__ == "__main__":
    main()
