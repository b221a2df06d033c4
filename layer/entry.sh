#!/bin/bash
# lambdakit post-runner, exec-wrapper mode.
#
# Set AWS_LAMBDA_EXEC_WRAPPER=/opt/entry.sh on a function with the lambdakit post-runner layer:
# Lambda then runs this script with the runtime's command line as arguments
# (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-modify.html#runtime-wrapper), and we run
# it behind the post-runner (`lambdakit post-run -- "$@"`).  Configuration is the
# AWS_LAMBDA_POST_RUNNER_* variables; see docs/post-runner.md.
#
# The post-runner is Python (3.10 or later, stdlib only).  The interpreter is, in order:
# $LAMBDAKIT_POST_RUNNER_PYTHON; the runtime's own when its command line starts with a python3
# executable (the Python managed runtimes); /var/lang/bin/python3; python3 on PATH.  With none,
# the problem is reported as an init error (bash's /dev/tcp: no curl needed) and we exit 127.
set -u

here="${BASH_SOURCE[0]%/*}"
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
launcher="$here/lambdakit-post-run/launch.py"   # in the layer: /opt/lambdakit-post-run/
[ -f "$launcher" ] || launcher="$here/launch.py" # in a source checkout: layer/launch.py

python=""
first="${1:-}"
case "${first##*/}" in
  python3*|python) runtime_python="$first" ;;
  *) runtime_python="" ;;
esac
for candidate in "${LAMBDAKIT_POST_RUNNER_PYTHON:-}" "$runtime_python" /var/lang/bin/python3 python3; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
    python="$candidate"
    break
  fi
done

report_init_error() {
  # POST /2018-06-01/runtime/init/error with bash alone.
  local message="$1" type="PostRunner.Unavailable" body api="${AWS_LAMBDA_RUNTIME_API:-}"
  body="{\"errorMessage\":\"$message\",\"errorType\":\"$type\"}"
  [ -n "$api" ] || return 1
  exec 3<>"/dev/tcp/${api%:*}/${api##*:}" || return 1
  printf 'POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: %s\r\nLambda-Runtime-Function-Error-Type: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$api" "$type" "${#body}" "$body" >&3
  read -r -t 2 _ <&3
  exec 3<&-
}

if [ -z "$python" ]; then
  message="lambdakit post-runner: no python3 interpreter found (set LAMBDAKIT_POST_RUNNER_PYTHON)"
  echo "$message" >&2
  report_init_error "$message"
  exit 127
fi
# -E -s: the function's PYTHONPATH and user site never shadow the post-runner's modules (the
# runtime itself still gets the environment unchanged).
exec "$python" -E -s "$launcher" -- "$@"
