"""An HTTP API's function (payload format 2.0): a small user store behind three routes.

    lambdakit serve --config examples/api-gateway/lambdakit.toml
    curl -s http://127.0.0.1:3000/users/ada
    curl -s -XPOST http://127.0.0.1:3000/users -d '{"id": "grace", "name": "Grace Hopper"}'

``handler`` picks the work by the event's ``routeKey``: ``get_user`` reads the ``{id}`` path
parameter, ``create_user`` the JSON body.  A result without ``statusCode`` (``list_users``) is
sent as a 200 JSON body, as an HTTP API does.
"""

import base64
import json

_USERS = {"ada": {"id": "ada", "name": "Ada Lovelace"}}  # this environment's store


def get_user(event, context):
    user = _USERS.get(event["pathParameters"]["id"])
    if user is None:
        return {"statusCode": 404, "body": json.dumps({"error": "no such user"})}
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(user),
    }


def create_user(event, context):
    try:
        body = event.get("body") or ""
        if event["isBase64Encoded"]:  # a body whose content type is not text
            body = base64.b64decode(body)
        user = json.loads(body)
        _USERS[user["id"]] = {"id": user["id"], "name": user.get("name", "")}
    except (ValueError, KeyError, TypeError):
        return {"statusCode": 400, "body": json.dumps({"error": 'send {"id": ..., "name": ...}'})}
    return {
        "statusCode": 201,
        "headers": {"location": f"/users/{user['id']}"},
        "cookies": [f"last_created={user['id']}; Path=/"],
        "body": json.dumps(_USERS[user["id"]]),
    }


def list_users(event, context):
    return sorted(_USERS.values(), key=lambda user: user["id"])


_ROUTES = {"GET /users/{id}": get_user, "POST /users": create_user, "GET /users": list_users}


def handler(event, context):
    return _ROUTES[event["routeKey"]](event, context)
