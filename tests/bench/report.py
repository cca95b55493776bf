"""Turns wrk --latency outputs into the benchmark table (best round each)."""
import sys

from wrk import parse

runs = {}
for line in open(sys.argv[1]):
    target, path = line.split()
    runs.setdefault(target, []).append(parse(path))

# Median-free and honest: report each target's mean over rounds.
rows = {}
for target, results in runs.items():
    n = len(results)
    rows[target] = {k: sum(r[k] for r in results) / n for k in ("rps", "p50", "p99")}
    rows[target]["errors"] = sum(r["errors"] for r in results)
    rows[target]["rounds"] = n

print("%-8s %12s %10s %10s %8s" % ("target", "requests/s", "p50 ms", "p99 ms", "non-2xx"))
for target in ("direct", "2hop", "fc", "fc-default"):
    if target in rows:
        r = rows[target]
        print("%-8s %12.0f %10.3f %10.3f %8d" % (target, r["rps"], r["p50"], r["p99"], r["errors"]))
if "fc" in rows and "2hop" in rows:
    print()
    for t in ("fc", "fc-default"):
        if t in rows:
            print("%-10s / 2hop throughput: %.2f  (target >= 1.00)" % (t, rows[t]["rps"] / rows["2hop"]["rps"]))
            print("%-10s / 2hop p99:        %.2f  (target <= 1.00)" % (t, rows[t]["p99"] / rows["2hop"]["p99"]))
if "fc" in rows and "fc-default" in rows:
    print("fc-default / fc (upstream keepalive) throughput: %.2f  (target >= 0.95)"
          % (rows["fc-default"]["rps"] / rows["fc"]["rps"]))
# Per round as well: on a shared machine the mean hides how much rounds move.
if "2hop" in runs:
    for t in ("fc", "fc-default"):
        if t in runs:
            ratios = [f["rps"] / h["rps"] for f, h in zip(runs[t], runs["2hop"])]
            print("%-10s / 2hop throughput per round: %s" % (t, " ".join("%.2f" % r for r in ratios)))
