# The handler: echoes the event back, and logs a line.
function handler () {
  echo "echoing $(printf '%s' "$1" | wc -c) bytes" >&2
  printf '%s' "$1"
}
