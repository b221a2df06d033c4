"""The README's AWS CLI commands, as written, on a machine with no AWS configuration at all."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.serving import REPO, bash_function, running_serve

AWS = Path(sys.executable).parent / "aws"


def _readme_commands() -> list[list[str]]:
    """Each ``aws lambda invoke`` command of README.md, continuation lines joined."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("aws lambda")]
    return [shlex.split(line, comments=True) for line in lines]


def _fresh_environment(home: Path) -> dict[str, str]:
    """No AWS_* variable, and a HOME without ~/.aws: what a new machine has."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**kept, "HOME": str(home)}


def test_readme_aws_cli_commands_work_on_a_fresh_machine(tmp_path: Path) -> None:
    commands = _readme_commands()
    assert len(commands) >= 2  # the quick start's and the scale-out section's
    home = tmp_path / "home"
    home.mkdir()
    with running_serve(*bash_function("--function-name", "echo")) as serve:
        for command in commands:
            assert command[:3] == ["aws", "lambda", "invoke"]
            argv = [str(AWS), *command[1:]]
            argv = [serve.url if a == "http://127.0.0.1:8080" else a for a in argv]
            out = tmp_path / "out.json"
            argv[-1] = str(out)
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=tmp_path,
                env=_fresh_environment(home),
            )
            assert result.returncode == 0, (command, result.stderr)
            assert json.loads(result.stdout)["StatusCode"] == 200
            payload = command[command.index("--payload") + 1] if "--payload" in command else "{}"
            assert json.loads(out.read_text()) == json.loads(payload)
    assert not (home / ".aws").exists()


def test_without_the_flags_a_fresh_machine_fails_as_the_issue_says(tmp_path: Path) -> None:
    """The guard of the test above: the bare command does fail here."""
    home = tmp_path / "home"
    home.mkdir()
    with running_serve(*bash_function("--function-name", "echo")) as serve:
        result = subprocess.run(
            [str(AWS), "lambda", "invoke", "--endpoint-url", serve.url,
             "--function-name", "echo", str(tmp_path / "out.json")],
            capture_output=True,
            text=True,
            timeout=60,
            env=_fresh_environment(home),
        )  # fmt: skip
    assert result.returncode != 0
    assert re.search(r"region|credentials", result.stderr)
