"""Stands in for the `pyodide` package in activation tests."""

FAKE_SDK = True
