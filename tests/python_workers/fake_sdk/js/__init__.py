"""Stands in for Pyodide's `js` module in activation tests."""

FAKE_SDK = True
