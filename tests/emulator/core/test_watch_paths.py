"""Which functions a change reloads, what the reload line says, what the watcher ignores."""

from __future__ import annotations

from pathlib import Path

from lambdakit.emulator.watch import CodeWatcher, changed_in, code_filter, describe_files


class Recorder:
    def __init__(self) -> None:
        self.reloads = 0

    def reload(self) -> None:
        self.reloads += 1


def test_a_change_reloads_every_function_whose_code_directory_holds_it(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "other").mkdir()
    pools = {name: Recorder() for name in ("root", "twin", "nested", "other")}
    code_dirs = {
        "root": tmp_path,
        "twin": tmp_path / "." / "sub" / "..",  # the same directory, spelled otherwise
        "nested": tmp_path / "sub",
        "other": tmp_path / "other",
    }
    watcher = CodeWatcher(pools, code_dirs)
    assert [w.functions for w in watcher.watched] == [("root", "twin"), ("other",), ("nested",)]
    watcher.changed([str(tmp_path / "sub" / "lib.py")])
    assert {name: pool.reloads for name, pool in pools.items()} == {
        "root": 1,
        "twin": 1,
        "nested": 1,
        "other": 0,
    }
    watcher.changed(["/elsewhere/app.py"])
    assert pools["root"].reloads == 1


def test_the_reload_line_names_files_that_exist_and_counts_the_rest(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("")
    gone = str(tmp_path / "sedX1y2z3")  # sed -i's temporary file, renamed over app.py
    assert changed_in(tmp_path, [str(tmp_path / "app.py"), gone]) == ["app.py"]
    assert changed_in(tmp_path, [gone]) == ["sedX1y2z3"]  # a deletion is still named
    assert describe_files(["a.py", "b.py"]) == "a.py, b.py"
    assert describe_files(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"


def test_what_no_function_reads_is_ignored(tmp_path: Path) -> None:
    state = tmp_path / "state"
    keep = code_filter([state])
    ignored = [
        "__pycache__/app.cpython-311.pyc",
        "app.pyc",
        ".app.py.swp",
        "app.py~",
        ".#app.py",
        "4913",
        ".git/index",
        ".lambdakit/events.sqlite3",
        "node_modules/x/index.js",
        "state/events.sqlite3-journal",
    ]
    for name in ignored:
        assert not keep(None, str(tmp_path / name)), name
    for name in ("app.py", "lib/util.py", "bootstrap", "function.sh", "templates/page.html"):
        assert keep(None, str(tmp_path / name)), name
