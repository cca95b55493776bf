"""Prints the CPU time (utime + stime, clock ticks) of each given process
and all of its descendants: `cpu_ticks.py PID...` -> one number per PID
(`=PID`: that process alone)."""
import os
import sys

stats = {}
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid, utime + stime
children = {}
for pid, (ppid, _) in stats.items():
    children.setdefault(ppid, []).append(pid)


def tree(pid):
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0))[1]
        todo.extend(children.get(p, []))
    return total


print(" ".join(str(stats.get(int(p[1:]), (0, 0))[1] if p.startswith("=") else tree(int(p))) for p in sys.argv[1:]))
