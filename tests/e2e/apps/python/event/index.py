# Event functions of python_runtime_test.cc: FC's handler(event, context).
import json
import logging
import os
import time

counter = 0


def initializer(context):
    global counter
    counter += 1


def handler(event, context):
    global counter
    if event == b"count":
        counter += 2
        return counter  # an int: FC sends str(result)
    if event == b"fail":
        raise ValueError("the event asked to fail")
    if event == b"none":
        return None
    if event == b"text":
        return "h\u00e9llo"  # str: UTF-8
    if event == b"context":
        f, s = context.function, context.service
        return json.dumps({
            "request_id": context.request_id,
            "function": [f.name, f.handler, f.memory, f.timeout, f.initializer],
            "service": [s.name, s.log_project, s.log_store, s.qualifier, s.version_id],
            "region": context.region, "account_id": context.account_id,
            "credentials": [context.credentials.access_key_id, context.credentials.access_key_secret,
                            context.credentials.security_token],
        })
    if event == b"log":
        context.logger.info("from context.logger")
        logging.getLogger("user.module").warning("from logging.getLogger")
        print("from print")
        return context.request_id
    return event  # bytes: unchanged


def slow_initializer(context):
    time.sleep(1)


def instance(event, context):
    # "sleep:<seconds>" sleeps first; answers with the instance's id.
    if event.startswith(b"sleep:"):
        time.sleep(float(event[6:]))
    return os.environ["FC_INSTANCE_ID"]


def failing_initializer(context):
    return 1 / 0


def pre_stop(context):
    # FC's preStop hook: leaves a mark the test can see.
    with open(os.environ["PRE_STOP_FILE"], "w") as f:
        f.write(context.request_id)
