"""Load generators, measurements and the report for `make bench` (bench/run.sh drives them).

Run as `python3 -m skiffbench <command>` with bench/ on PYTHONPATH. Standard library only. Every
command talks to 127.0.0.1, is bounded in count and time, and prints (or writes with --json) one
JSON object with what it measured.

  throughput.py    wrk, merge, redis-bench: one throughput run with the CPU time it cost (a, b, e)
  loadgen.py       latency: open-loop produce+consume at a fixed rate, end to end (c)
  wakeup.py        wakeup: POST to replica A while one consumer already waits on replica B (d)
  latencyruns.py   latency-runs: the median of repeated (c) and (d) runs, and all of them in the report
  resources.py     idle, memory: many idle long-polls on one replica (f); Redis bytes per message (g)
  embedded.py      prefill-http, replica-state: the embedded memory backend against the Redis-backed
                   replica, and ElasticMQ's published figures (m, issue 24)
  scaling.py       wrk-spread: 1, 2 and 4 replicas on one Redis, one wrk each at once (scaling, issue 24)
  fixedcost.py     unloaded, roundtrips: one request at a time: CPU, latency, Redis commands
  scaleout.py      scale-out, cluster-ports, scale-out-merge: many queues on one Redis and on a Redis
                   Cluster, Redis CPU per message on each primary (issue 18)
  large.py         large, large-merge: bodies of 1 KiB to 4 MiB with and without a payload store:
                   rates, latency, Redis and store bytes per message, CPU (l, issue 23)
  preparation.py   settle, prefill, probe: between and before the scenarios
  report.py        report: the console table and BENCHMARKS.md (results.py, compare.py, details.py)
  plot.py          plot: the latency-percentile plot (gnuplot)
  perf.py          perf-summary: a perf profile of the replica as markdown
  clients.py, measure.py, formatting.py, options.py: what the others share
"""
