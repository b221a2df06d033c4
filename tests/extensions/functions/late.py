"""Imports lambdakit.extensions only during the invocation: too late to register, under
awslambdaric (Lambda accepts extension registrations during Init only)."""

import time


def handler(event, context):
    from lambdakit.extensions import background_task

    background_task(time.sleep, 0.1)
    return "unreachable under awslambdaric"
