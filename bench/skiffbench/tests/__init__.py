"""The harness's own arithmetic (`PYTHONPATH=bench python3 -m unittest discover -s bench/skiffbench/tests -t bench`;
bench/run.sh --smoke runs them first)."""
