# The python3 runtime's bootstrap (DESIGN §6), imported by bootstrap.py from
# the build's runtime directory (next to _fcruntime, precompiled there: cold
# start does not pay for compiling this file).  It puts codeUri and codeUri/python on
# sys.path, imports the handler, sets up FC's log format and hands over to
# the native host (_fcruntime), which serves the instance contract in C and
# calls back only into the user's code and the small helpers below.
# Imports are kept to what every instance needs: cold start is the budget.
# logging alone costs more than the whole bootstrap, so FC's log format is
# installed when the user's code first imports logging (or touches
# context.logger), not before.
import gc
import os
import sys
import time


class _Record:
    __slots__ = ()

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (k, getattr(self, k)) for k in self._fields))


class Credentials(_Record):
    __slots__ = _fields = ("access_key_id", "access_key_secret", "security_token")

    def __init__(self):
        # No cloud account here: FC's fields, empty.
        self.access_key_id = ""
        self.access_key_secret = ""
        self.security_token = ""


class FunctionMeta(_Record):
    __slots__ = _fields = ("name", "handler", "memory", "timeout", "initializer", "initialization_timeout")

    def __init__(self, env):
        self.name = env.get("FC_FUNCTION_NAME", "")
        self.handler = env.get("FC_FUNCTION_HANDLER", "")
        self.memory = int(env.get("FC_FUNCTION_MEMORY_SIZE", "0") or 0)
        self.timeout = _number(env.get("FC_FUNCTION_TIMEOUT", "0"))
        self.initializer = env.get("FC_INITIALIZER", "")
        self.initialization_timeout = _number(env.get("FC_INITIALIZATION_TIMEOUT", "0"))


class ServiceMeta(_Record):
    __slots__ = _fields = ("name", "log_project", "log_store", "qualifier", "version_id")

    def __init__(self, env):
        self.name = env.get("FC_SERVICE_NAME", "")
        self.log_project = env.get("FC_SERVICE_LOG_PROJECT", "")
        self.log_store = env.get("FC_SERVICE_LOG_STORE", "")
        self.qualifier = env.get("FC_QUALIFIER", "LATEST")
        self.version_id = env.get("FC_VERSION_ID", "")


class Context(_Record):
    """FC's context argument: one per invocation.  Only the request id is
    its own; what every invocation of the instance shares is set on the
    class by main(), so making one (per request, by the native host) is a
    single attribute store."""
    __slots__ = ("request_id",)
    _fields = ("request_id", "credentials", "function", "service", "region", "account_id", "instance_id")

    def __init__(self, request_id):
        self.request_id = request_id

    @property
    def logger(self):
        import logging
        return logging.getLogger()


def _number(text):
    try:
        value = float(text)
    except ValueError:
        return 0
    return int(value) if value.is_integer() else value


def _configure_logging(logging):
    """FC's log line on the root logger: `<time> <request id> [LEVEL] <message>`."""

    class FCFormatter(logging.Formatter):
        def format(self, record):
            t = time.gmtime(record.created)
            stamp = "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], record.msecs)
            text = record.getMessage()
            if record.exc_info:
                text = text + "\n" + self.formatException(record.exc_info)
            return "%s %s [%s] %s" % (stamp, _fcruntime.request_id(), record.levelname, text)

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(FCFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


class _LoggingHook:
    """A meta-path finder that lets the real finders import logging, then
    configures it before anyone else sees the module."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_configure(module):
            exec_module(module)
            _configure_logging(module)
        loader.exec_module = exec_and_configure
        return spec


def _log_error(text):
    import logging
    logging.getLogger().error(text)


def _load(spec, what):
    """'pkg.module.attr' -> the attribute (FC's handler naming)."""
    module_name, dot, attr = spec.rpartition(".")
    if not dot or not module_name or not attr:
        raise ValueError("%s %r must be module.function (e.g. index.handler)" % (what, spec))
    __import__(module_name)
    target = getattr(sys.modules[module_name], attr, None)
    if target is None:
        raise AttributeError("%s %r: module %r has no attribute %r" % (what, spec, module_name, attr))
    return target


def initialize(context):
    if _INITIALIZER_ERROR is not None:
        raise _INITIALIZER_ERROR
    if _initializer is not None:
        _initializer(context)


def pre_stop(context):
    # FC's preStop hook (instanceLifecycleConfig.preStop.handler), resolved
    # when it is called: an instance that never stops never imports it.
    if _PRE_STOP_HANDLER:
        _load(_PRE_STOP_HANDLER, "preStop handler")(context)


def report_error(kind, exc_type, exc, tb):
    """Logs an exception of the user's code with the request id and returns
    the body for the runner: FC's error JSON for an event invocation, the
    traceback's last line for an initializer, nothing for WSGI (500)."""
    import json
    import traceback
    lines = traceback.format_exception(exc_type, exc, tb)
    _log_error("".join(lines).rstrip("\n"))
    if kind == "event":
        frames = traceback.extract_tb(tb)
        return json.dumps({
            "errorMessage": str(exc),
            "errorType": getattr(exc_type, "__name__", str(exc_type)),
            "stackTrace": [
                'File "%s", line %s, in %s%s' % (f.filename, f.lineno, f.name, "\n    " + f.line if f.line else "")
                for f in frames
            ],
        }).encode()
    if kind == "init":
        return traceback.format_exception_only(exc_type, exc)[-1].strip().encode("utf-8", "replace")
    return b""


def main(fcruntime, threads, pre_stop_handler=""):
    global _fcruntime, _initializer, _INITIALIZER_ERROR, _PRE_STOP_HANDLER
    global _FUNCTION
    _fcruntime = fcruntime
    _PRE_STOP_HANDLER = pre_stop_handler
    env = os.environ
    code = env.get("FC_FUNC_CODE_PATH") or os.getcwd()
    # The bootstrap's own directory must not shadow the user's modules.
    sys.path[0:1] = [code, os.path.join(code, "python")]

    Context.credentials = Credentials()
    Context.function = _FUNCTION = FunctionMeta(env)
    Context.service = ServiceMeta(env)
    Context.region = env.get("FC_REGION", "")
    Context.account_id = env.get("FC_ACCOUNT_ID", "")
    Context.instance_id = env.get("FC_INSTANCE_ID", "")
    if "logging" in sys.modules:  # imported by a sitecustomize
        _configure_logging(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, _LoggingHook())

    # The handler must import before the instance listens: a broken one is
    # a start failure whose output says why.  The initializer's errors belong
    # to POST /initialize, so its 503 carries them.
    handler = _load(_FUNCTION.handler or "index.handler", "handler")
    _initializer = None
    _INITIALIZER_ERROR = None
    if _FUNCTION.initializer:
        try:
            _initializer = _load(_FUNCTION.initializer, "initializer")
        except BaseException as e:  # reported by initialize()
            _INITIALIZER_ERROR = e
    # What the imports made lives as long as the instance: out of the
    # collector's generations (gc.freeze), a full collection that the
    # app's own garbage sets off does not walk all of it, a pause at the
    # tail of the latency (Flask, Django: tens of thousands of objects).
    gc.freeze()
    port = int(env.get("FC_SERVER_PORT") or env.get("FC_CUSTOM_LISTEN_PORT") or 9000)
    _fcruntime.serve(port, threads, handler, Context, report_error, initialize, pre_stop)

