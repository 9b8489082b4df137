"""python3 -m chaos run|check|link|soak ... (see chaos/__init__.py)."""

import sys


def main(argv: list[str]) -> int:
    commands = ("run", "check", "link", "soak")
    if not argv or argv[0] not in commands:
        print("usage: python3 -m chaos {run|check|link|soak} [--help]", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "check":
        from . import checker

        return checker.main(rest)
    if command == "link":
        from . import link

        return link.main(rest)
    if command == "soak":
        from . import soak

        return soak.main(rest)
    from . import runner

    return runner.main(rest)


sys.exit(main(sys.argv[1:]))
