"""The base of every error Taxolens raises for a user's input, files or environment. The CLI and the app
show these as one plain message; anything else that escapes is a bug, reported as one with its traceback."""

from __future__ import annotations


class TaxolensError(Exception):
    """A problem the user can fix (an argument, a file, a setting, a missing model); never a bug."""


class SettingError(TaxolensError, ValueError):
    """A setting, option or parameter outside what it accepts (also a ValueError, as before)."""


class DataError(TaxolensError, ValueError):
    """The product table, its columns or a data file cannot be used as asked; the message says how to fix it."""
