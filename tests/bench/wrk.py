"""Reads one `wrk --latency` output: requests/s, p50 and p99 in ms, non-2xx count, requests."""
import re

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def latency_ms(text, pct):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def parse(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": rps, "p50": latency_ms(text, 50), "p99": latency_ms(text, 99),
            "errors": int(errors.group(1)) if errors else 0,
            "requests": int(re.search(r"(\d+) requests in", text).group(1))}
