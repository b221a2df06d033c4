"""Start the lambdakit post-runner from the layer (or a source checkout): ``launch.py -- CMD...``.

Kept to syntax every Python 3 reads, so that an interpreter too old for the post-runner gets a
clear init error instead of a SyntaxError in a module it cannot parse.
"""

import json
import os
import sys

MINIMUM = (3, 10)


def _report(message):
    """POST /runtime/init/error (stdlib only), then exit."""
    sys.stderr.write(message + "\n")
    api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if api:
        try:
            import urllib.request

            body = json.dumps({"errorMessage": message, "errorType": "PostRunner.Unavailable"})
            request = urllib.request.Request(
                "http://" + api + "/2018-06-01/runtime/init/error",
                data=body.encode(),
                headers={"Lambda-Runtime-Function-Error-Type": "PostRunner.Unavailable"},
                method="POST",
            )
            urllib.request.urlopen(request, timeout=2).close()
        except Exception as exc:
            sys.stderr.write(f"could not report the init error: {exc}\n")
    sys.exit(127)


def main():
    if sys.version_info < MINIMUM:
        version = sys.version.split()[0]
        _report(
            f"lambdakit post-runner needs Python {MINIMUM[0]}.{MINIMUM[1]} or later; "
            f"{sys.executable} is {version} (set LAMBDAKIT_POST_RUNNER_PYTHON)"
        )
    here = os.path.dirname(os.path.abspath(__file__))
    root = here if os.path.isdir(os.path.join(here, "lambdakit")) else os.path.dirname(here)
    sys.path.insert(0, root)
    from lambdakit.postrun.cli import main as post_run

    sys.exit(post_run(sys.argv[1:], os.environ))


if __name__ == "__main__":
    main()
