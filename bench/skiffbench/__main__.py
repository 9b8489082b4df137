"""`python3 -m skiffbench <command> [--help]`: the commands of every module, one parser."""

import argparse

from . import __doc__ as overview
from . import (embedded, fixedcost, large, latencyruns, loadgen, perf, plot, preparation, push, report, resources, scaleout, scaling,
               streams, throughput, topics, tracing, wakeup, workers)


def main():
    parser = argparse.ArgumentParser(prog="skiffbench", description=overview,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (throughput, fixedcost, preparation, loadgen, wakeup, latencyruns, resources, embedded, scaling, scaleout, streams,
                   topics, push, workers, large, tracing, plot, perf, report):
        module.add_commands(sub)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
