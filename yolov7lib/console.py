"""What every command line of the package shares: help text that shows each option's default
under a description kept as written.
"""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """``--help``: the description as written (docstrings with examples), every option with its default."""
