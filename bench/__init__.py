"""The convforge benchmark harness: ``python -m bench [suite]`` from a checkout."""
