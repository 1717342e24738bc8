"""Compress a trained run: ``python compress.py --run checkpoints/<run> --method qat``.

``python compress.py --help`` lists every option; the new run folder lands in checkpoints/.
"""

from zoo.cli import run

if __name__ == "__main__":
    from zoo.compress.cli import compress_command

    run(compress_command, name="compress.py")
