"""The console script's own behaviour: a closed pipe is not an error, and ending the process
early still runs the exit handlers."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_reader_that_goes_away_gets_no_traceback():
    # `grader checks | head -1`: the reader closes the pipe after one line.
    proc = subprocess.Popen([sys.executable, "-m", "grader", "checks", "--hidden"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert first.startswith(b"attention") or first
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_console_runs_exit_handlers_before_ending(tmp_path):
    marker = tmp_path / "cleaned"
    script = textwrap.dedent(f"""
        import atexit, pathlib, sys
        import grader.cli as cli
        atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text("yes"))
        cli.main = lambda argv=None: 3
        cli.console()
        print("not reached")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3
    assert "not reached" not in done.stdout
    assert marker.read_text() == "yes"


def test_each_command_builds_its_own_parser_and_a_grading_imports_no_other_tool():
    import subprocess
    import sys

    from grader.cli import COMMANDS, SUBCOMMANDS, build_parser

    assert sorted(COMMANDS.values()) == sorted(SUBCOMMANDS)
    for command in COMMANDS:
        sub = next(a for a in build_parser(command)._actions if a.dest == "command")
        assert set(sub.choices) == {command}, command
    full = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(full.choices) == set(COMMANDS)
    code = ("import sys\nfrom grader.cli import main\ntry:\n    main(['run', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('grader.quiz', "
            "'grader.release'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().endswith("[]"), out
