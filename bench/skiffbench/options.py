"""Command-line options that mean the same in several commands, each declared once: where the
servers listen, what to account and write, and the settings of a scenario that the report
describes (its defaults are the generator's)."""

OPTIONS = {
    "--port": dict(type=int, required=True, help="Skiff's HTTP port"),
    "--redis-port": dict(type=int, required=True),
    "--produce-port": dict(type=int, required=True),
    "--consume-port": dict(type=int, required=True),
    "--queue": dict(required=True),
    "--connections": dict(type=int, default=50),
    "--cpu": dict(action="append", help="name=pid of a process whose CPU time to account"),
    "--json": dict(help="also write the result to this file"),
    "--distribution": dict(help="write the latency percentiles here, for gnuplot"),
    "--results": dict(required=True, help="the directory of a run's results"),
    "--rate": dict(type=float, default=5000, help="messages per second"),
    "--warmup": dict(type=float, default=1, help="seconds sent before the measured ones"),
    "--grace": dict(type=float, default=3, help="seconds to wait for the last messages"),
    "--producers": dict(type=int, default=16),
    "--consumers": dict(type=int, default=16),
    "--body-bytes": dict(type=int, default=128),
    "--settle-ms": dict(type=float, default=30, help="how long a consumer waits before the message is sent"),
    "--idle-seconds": dict(type=float, default=10),
}


def add(parser, *names, **defaults):
    """Adds the options `names` to `parser`; `defaults` (queue="bench-f") gives one a default of
    this command's, which makes it optional."""
    for name in names:
        spec = dict(OPTIONS[name])
        key = name[2:].replace("-", "_")
        if key in defaults:
            spec.pop("required", None)
            spec["default"] = defaults[key]
        parser.add_argument(name, **spec)
    return parser
