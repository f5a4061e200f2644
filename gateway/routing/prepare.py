"""``python -m gateway.routing.prepare [--folder F]``: build the router's derived model file.

Run by the Makefile's install step and the Containerfile, so that no worker builds it at start
(see ``minilm_model``). Prints the file's path; exits non-zero if it cannot be built.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gateway.routing import minilm_model


def main(argv: list[str] | None = None) -> None:
    """Build the prepared MiniLM file in ``--folder`` unless a pinned copy is there."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=minilm_model.folders()[0])
    args = parser.parse_args(argv)
    present = minilm_model.pinned_in(args.folder)
    if present is not None:
        sys.stdout.write(f"{present}: present\n")
        return
    # onnxruntime's quantizer advises pre-processing on the root logger; nothing to act on here.
    logging.getLogger().setLevel(logging.ERROR)
    sys.stdout.write(f"{minilm_model.build(args.folder)}: built\n")


if __name__ == "__main__":
    main()
