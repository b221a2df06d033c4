"""Returns what the handler's context says about the caller's client context."""


def handler(event, context):
    client_context = context.client_context
    if client_context is None:
        return {"client_context": None}
    client = client_context.client
    return {
        "custom": client_context.custom,
        "env": client_context.env,
        "client": None
        if client is None
        else {"installation_id": client.installation_id, "app_title": client.app_title},
    }
