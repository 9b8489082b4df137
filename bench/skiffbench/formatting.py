"""How the report writes numbers, and reads the results directory."""

import json
import math
import os


def load(directory, name):
    path = os.path.join(directory, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        try:
            return json.load(handle)
        except ValueError:
            return None


def rate_text(value):
    return "—" if value is None else "{:,.0f}".format(value).replace(",", " ")


def ms(value):
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    return "%.2f" % value if value < 10 else ("%.1f" % value if value < 1000 else "{:,.0f}".format(value).replace(",", " "))


def ratio_text(skiff, peer):
    if skiff is None or peer in (None, 0):
        return "—"
    return "%.2f×" % (skiff / peer)


def verdict(met, detail):
    return ("yes" if met else "**no**") + (" (%s)" % detail if detail else "")


def wrk_rate(result):
    if not result or result.get("exit") not in (0, None) or not result.get("ok"):
        return None
    return result["ok_per_second"]
