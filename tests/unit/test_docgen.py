"""datasock.docgen: the command-line reference generated from `datasock.cli.parser()` names every command and option."""
from __future__ import annotations

import argparse

from datasock import cli
from datasock import docgen


def test_every_command_and_option_of_the_cli_is_listed():
    text = docgen.cli_reference_rst(cli.parser())
    for command in ("up", "router", "hub", "node", "http", "mqtt", "scan", "nodes", "fields", "get", "config"):
        assert f"``datasock {command}``" in text, command
    for option in ("--once", "--write-sample", "--min-stride MIN_STRIDE", "--format FORMAT", "--rst",
                   "kind (sim | host | archive | mqtt"):
        assert option in text, option


def test_nested_commands_defaults_and_escaping():
    p = argparse.ArgumentParser(prog="tool")
    sub = p.add_subparsers()
    a = sub.add_parser("a", help="does *a*")
    a.add_argument("--level", default=3, help="how much")
    inner = a.add_subparsers().add_parser("b", help="inner")
    inner.add_argument("path")
    text = docgen.cli_reference_rst(p)
    assert "``tool a``" in text and "does \\*a\\*" in text
    assert "   * - ``--level LEVEL``\n     - ``3``\n     - how much" in text
    assert "``tool a b``" in text and "``path``" in text


def test_aliases_listed_once_with_their_command():
    text = docgen.cli_reference_rst(cli.parser())
    assert "``datasock status``" in text and "(alias ``datasock doctor``)" in text
    assert "``datasock doctor``\n~" not in text
    for command in ("tail", "status"):
        assert f"``datasock {command}``" in text, command
    assert "--time-format TIME_FORMAT" in text


def test_exit_status_table_from_the_one_rule():
    from datasock import errors

    text = docgen.exit_status_rst(errors.EXIT_MEANINGS)
    assert [line.strip() for line in text.splitlines() if line.startswith("   * - ")][1:] == [
        "* - 0", "* - 1", "* - 2"]
    assert "     - Usage or configuration: " in text and "'datasock status': a check failed" in text
    assert set(errors.EXIT_MEANINGS) == {errors.EXIT_OK, errors.EXIT_FAILURE, errors.EXIT_USAGE}


def test_top_level_options_come_first():
    text = docgen.cli_reference_rst(cli.parser())
    head, _, rest = text.partition("``datasock up``")
    assert head.startswith("``datasock [OPTION] COMMAND``\n~")
    assert "   * - ``--version``\n     - \n     - print datasock's version and exit" in head
    assert "Exit status: 0 success" in head
    assert "--version" not in rest and "-h, --help" not in text
    # a parser with no options of its own before the command: no such section
    p = argparse.ArgumentParser(prog="tool")
    p.add_subparsers().add_parser("a", help="does a")
    assert docgen.cli_reference_rst(p).startswith("``tool a``")
