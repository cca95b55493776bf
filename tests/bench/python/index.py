# The cold-start function: what `python3 -c 'import index'` imports bare.
def handler(event, context):
    return b"cold\n"
