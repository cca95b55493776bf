# The python3 runtime's entry (DESIGN §6), run by fc-runner in the function's
# code directory as
#   <interpreter> bootstrap.py <runtime dir> <instanceConcurrency> [<preStop handler>]
# <runtime dir> is the build's: the native host _fcruntime (abi3) and the
# precompiled _fcbootstrap.  Both are imported from there and the directory
# leaves sys.path again, so nothing of ours shadows the user's modules.
import sys

_runtime_dir, _threads = sys.argv[1], int(sys.argv[2])
_pre_stop = sys.argv[3] if len(sys.argv) > 3 else ""
del sys.argv[1:]
sys.path.insert(0, _runtime_dir)
try:
    import _fcbootstrap
    import _fcruntime
finally:
    sys.path.remove(_runtime_dir)
_fcbootstrap.main(_fcruntime, _threads, _pre_stop)
