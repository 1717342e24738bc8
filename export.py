"""Export a trained run: ``python export.py --format all`` (see zoo/export/exporter.py)."""

from zoo.cli import run

if __name__ == "__main__":
    from zoo.export.exporter import export_command

    run(export_command, name="export")
