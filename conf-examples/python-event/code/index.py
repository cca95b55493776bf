# An FC event function, unchanged: handler(event: bytes, context).
# POST raw bytes to it; what it returns is the response body.
import json
import logging

logger = logging.getLogger()
stopwords = set()


def initializer(context):
    # Once per instance, before its first event (FC's initializer).
    stopwords.update({"a", "an", "the", "to", "of", "or", "and"})
    logger.info("instance ready")


def handler(event, context):
    words = [w for w in event.decode("utf-8", "replace").lower().split() if w not in stopwords]
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    context.logger.info("counted %d words", len(words))
    return json.dumps({"words": len(words), "counts": counts, "requestId": context.request_id})
