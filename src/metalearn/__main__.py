"""``python -m metalearn`` (and ``torchrun -m metalearn``) runs the CLI."""
import sys

from .cli.main import main

sys.exit(main())
