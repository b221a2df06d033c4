# Handlers for the test runtime (see bootstrap).  Each gets the event as $1.

echo_event () {
  echo "got an event" >&2
  printf '%s' "$1"
}

sleep_half () {
  sleep 0.5
  printf '{"slept": 0.5}'
}

sleep_long () {
  sleep 30
  printf '{}'
}

fail () {
  printf 'boom'
  return 1
}

crash () {
  echo "crashing now" >&2
  return 42
}

context () {
  # The context headers the runtime received with the event, as JSON.
  local id deadline arn trace
  id=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$LAMBDA_HEADERS_FILE" | cut -d' ' -f2 | tr -d '\r')
  deadline=$(grep -Fi Lambda-Runtime-Deadline-Ms "$LAMBDA_HEADERS_FILE" | cut -d' ' -f2 | tr -d '\r')
  arn=$(grep -Fi Lambda-Runtime-Invoked-Function-Arn "$LAMBDA_HEADERS_FILE" | cut -d' ' -f2 | tr -d '\r')
  trace=$(grep -Fi Lambda-Runtime-Trace-Id "$LAMBDA_HEADERS_FILE" | cut -d' ' -f2 | tr -d '\r')
  printf '{"requestId":"%s","deadlineMs":%s,"arn":"%s","trace":"%s","env":{"name":"%s","memory":"%s","version":"%s","handler":"%s","region":"%s","taskRoot":"%s","logGroup":"%s","initType":"%s","custom":"%s"}}' \
    "$id" "$deadline" "$arn" "$trace" "$AWS_LAMBDA_FUNCTION_NAME" "$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" \
    "$AWS_LAMBDA_FUNCTION_VERSION" "$_HANDLER" "$AWS_REGION" "$LAMBDA_TASK_ROOT" \
    "$AWS_LAMBDA_LOG_GROUP_NAME" "$AWS_LAMBDA_INITIALIZATION_TYPE" "${CUSTOM_VAR:-}"
}

big () {
  head -c 7000000 /dev/zero | tr '\0' 'a' | sed 's/^/"/; s/$/"/'
}

record () {
  # Appends the event to $RECORD_FILE (one line per invocation), then echoes it.
  printf '%s\n' "$1" >> "$RECORD_FILE"
  printf '%s' "$1"
}

record_slow () {
  sleep 0.5
  record "$1"
}
