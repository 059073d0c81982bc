"""The fault suite: a real daemon process attacked on purpose (see conftest.py)."""
