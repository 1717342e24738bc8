"""Train a segmentation model: ``python train.py --arch mobileunet --alpha 0.5``.

``python train.py --help`` lists every option; the run folder lands in checkpoints/.
"""

from zoo.cli import run
from zoo.train.cli import train_command

if __name__ == "__main__":
    run(train_command, name="train.py")
