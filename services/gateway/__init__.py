"""The REST gateway: thin FastAPI routes over :mod:`services`."""
