"""A REST API's function (payload format 1.0): answers with the request it got, and a PNG when
the client accepts one.

    curl -s 'http://127.0.0.1:3000/legacy/anything/here?tag=a&tag=b'
    curl -s -H 'Accept: image/png' http://127.0.0.1:3000/legacy/pixel.png -o pixel.png
"""

import base64
import json

# A 1x1 transparent PNG.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def handler(event, context):
    if event["path"].endswith(".png"):
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(PIXEL).decode(),
            "isBase64Encoded": True,
        }
    seen = {
        "resource": event["resource"],
        "pathParameters": event["pathParameters"],
        "multiValueQueryStringParameters": event["multiValueQueryStringParameters"],
    }
    return {
        "statusCode": 200,
        "multiValueHeaders": {"X-Seen": ["path", "query"]},
        "body": json.dumps(seen),
    }
