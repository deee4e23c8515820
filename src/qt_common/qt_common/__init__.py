"""qt_common: the contracts every qt-robot package shares (numpy only, importable anywhere)."""
