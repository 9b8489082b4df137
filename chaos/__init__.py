"""Skiff's fault-injection suite (issue #7): a workload, a fault scheduler, a TCP fault proxy
between replicas and Redis, and a checker that reads the recorded history.

Entry points: ``chaos/run.sh`` (the whole run), ``chaos/run.sh --soak`` (the soak: soak.py) and
``python3 -m chaos {run,check,link,soak}``.
See RELIABILITY.md at the repository root for what the suite proves and what it found.
"""
