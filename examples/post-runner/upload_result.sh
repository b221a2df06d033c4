#!/bin/bash
# An AWS_LAMBDA_POST_RUNNER_COMMAND: runs after the caller has its response.
# Set AWS_LAMBDA_POST_RUNNER_COMMAND=/var/task/upload_result.sh (or /opt/... in a layer).
set -euo pipefail
echo "post-runner: ${POST_RUNNER_OUTCOME} for ${POST_RUNNER_REQUEST_ID} (${POST_RUNNER_FUNCTION_ARN})"
echo "post-runner: event $(wc -c < "$POST_RUNNER_EVENT_FILE") bytes, result $(wc -c < "$POST_RUNNER_RESULT_FILE") bytes"
# Real work goes here, e.g.:
#   aws s3 cp "$POST_RUNNER_RESULT_FILE" "s3://my-bucket/results/${POST_RUNNER_REQUEST_ID}.json"
# The files are removed when this script exits; copy what you need to keep.
sleep 1
echo "post-runner: done"
