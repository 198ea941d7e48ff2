"""Transitional alias of `mottr.schema` for the modules not yet moved to it (mottr/data.py,
mottr/train.py and their tests, edited by another change); import `mottr.schema` instead."""
from mottr.schema import *  # noqa: F401,F403  pylint: disable=wildcard-import
