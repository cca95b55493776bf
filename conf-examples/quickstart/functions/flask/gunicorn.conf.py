# gunicorn reads this file from its working directory (the function's codeUri):
# listen where the runner says, on loopback only.
import os

bind = "127.0.0.1:" + os.environ.get("FC_SERVER_PORT", "9000")
workers = 2
