"""Streaming handlers: run one with

    lambdakit serve --code-dir examples/streaming --function-name countdown app.countdown
    python examples/streaming/client.py countdown

or a Function URL (curl -N shows the lines as they come):

    lambdakit serve --code-dir examples/streaming --url-port 9000 app.page
    curl -N -i http://127.0.0.1:9000/
"""

import time

from lambdakit.streaming import HttpPrelude, streamify_response


def countdown(event, context):
    """Generator style: each yield reaches the caller at once."""
    for n in range(event.get("from", 5), 0, -1):
        yield f"{n}...\n"
        time.sleep(0.5)
    yield "liftoff\n"


@streamify_response
def report(event, response_stream, context):
    """Writer style: set the content type, then write."""
    response_stream.set_content_type("text/csv")
    response_stream.write("id,square\n")
    for i in range(event.get("rows", 10)):
        response_stream.write(f"{i},{i * i}\n")


def page(event, context):
    """A Function URL answer: status, headers and cookies first, then the body as written."""
    yield HttpPrelude(200, {"content-type": "text/html; charset=utf-8"}, ["visited=1; Path=/"])
    yield "<!doctype html><ul>\n"
    for i in range(5):
        yield f"<li>item {i}</li>\n"
        time.sleep(0.3)
    yield "</ul>\n"
