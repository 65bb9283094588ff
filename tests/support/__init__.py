"""Helpers shared by several tests; tests import them as ``support.<module>``, never each other.

``tests/`` is on ``sys.path`` through pytest's ``pythonpath`` setting (pyproject.toml), so the
package resolves the same way from every test folder and from a child process given that path.
"""
