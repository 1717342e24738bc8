"""Split computing: ``python split.py plan|export|serve|run --run checkpoints/<run> ...``.

``python split.py plan --help`` (and so on) lists each command's options.
"""

from zoo.cli import run

if __name__ == "__main__":
    from zoo.split.cli import COMMANDS

    run(COMMANDS, name="split.py")
