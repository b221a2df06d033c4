"""The example's handler: answers at once; the slow work is the post-runner's command."""


def handler(event, context):  # type: ignore[no-untyped-def]
    return {"ok": True, "request_id": context.aws_request_id}
