"""Print a streaming function's response as it arrives: python client.py FUNCTION [PAYLOAD]."""

import sys

import boto3

client = boto3.client(
    "lambda",
    endpoint_url="http://127.0.0.1:8080",
    region_name="us-east-1",
    aws_access_key_id="local",
    aws_secret_access_key="local",
)
response = client.invoke_with_response_stream(
    FunctionName=sys.argv[1], Payload=(sys.argv[2] if len(sys.argv) > 2 else "{}").encode()
)
for event in response["EventStream"]:
    if "PayloadChunk" in event:
        sys.stdout.write(event["PayloadChunk"]["Payload"].decode())
        sys.stdout.flush()
    elif "InvokeComplete" in event:
        complete = event["InvokeComplete"]
        if complete.get("ErrorCode"):
            print(f"\nfunction error {complete['ErrorCode']}: {complete.get('ErrorDetails')}")
