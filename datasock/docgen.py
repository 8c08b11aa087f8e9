"""reStructuredText reference tables generated from the code (pure).

docs/conf.py writes them into ``docs/_generated/`` when the documentation is built:

* :func:`settings_table_rst`: one component's settings (a :class:`datasock.settings.Group`),
  so the configuration reference lists exactly the variables the code reads;
* :func:`cli_reference_rst`: every command and option of an argparse parser
  (``datasock.cli.parser()``), the program's own options (``--version``) first, the way
  the settings tables list every variable;
* :func:`exit_status_rst`: the exit statuses every command and component ends with
  (:data:`datasock.errors.EXIT_MEANINGS`).
"""
from __future__ import annotations

import argparse
import re
from typing import Iterable


def _subcommands(parser: argparse.ArgumentParser):
    """``(name, aliases, parser, help)`` of each subcommand, once (an alias names the same parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest.split(" ")[0]: a.help for a in action._choices_actions}
            names: dict[int, list[str]] = {}
            for name, sub in action.choices.items():
                names.setdefault(id(sub), []).append(name)
            for name, sub in action.choices.items():
                first, *aliases = names[id(sub)]
                if name == first:
                    yield name, aliases, sub, helps.get(name) or ""


def _option_rows(parser: argparse.ArgumentParser) -> list[tuple[str, str, str]]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            name = ", ".join(action.option_strings)
            if action.nargs != 0:
                name += f" {action.metavar or action.dest.upper()}"
        else:
            name = action.metavar or action.dest
            if action.choices:
                name += " (" + " | ".join(map(str, action.choices)) + ")"
        default = "" if action.default in (None, False, [], argparse.SUPPRESS) else f"``{action.default}``"
        rows.append((name, default, (action.help or "").replace("%(default)s", str(action.default))))
    return rows


def _escape(text: str) -> str:
    # *, ` and a word ending in _ (a reference) are markup in reStructuredText
    return re.sub(r"(\w)_(?=\W|$)", r"\1\\_", text.replace("*", "\\*").replace("`", "'"))


def _option_table(rows: list[tuple[str, str, str]]) -> list[str]:
    if not rows:
        return []
    out = [".. list-table::", "   :header-rows: 1", "   :widths: 30 15 55", "",
           "   * - Argument", "     - Default", "     - Meaning"]
    for arg, default, meaning in rows:
        out += [f"   * - ``{arg}``", f"     - {default}", f"     - {_escape(meaning)}"]
    return out + [""]


def cli_reference_rst(parser: argparse.ArgumentParser, top: bool = True) -> str:
    """One section per (sub)command: its help line and a table of its arguments and options;
    first (``top``) the program's own options that come before the command (``--version``)."""
    prog = parser.prog
    out = []
    if top:
        rows = _option_rows(parser)
        if rows:
            heading = f"{prog} [OPTION] COMMAND"
            out += [f"``{heading}``", "~" * (len(heading) + 4), "",
                    _escape(" ".join(filter(None, (parser.description, parser.epilog)))), ""]
            out += _option_table(rows)
    for name, aliases, sub, help_text in _subcommands(parser):
        command = f"{prog} {name}"
        also = "".join(f" (alias ``{prog} {a}``)" for a in aliases)
        out += [f"``{command}``", "~" * (len(command) + 4), "",
                _escape(sub.description or help_text or "") + also, ""]
        out += _option_table(_option_rows(sub))
        nested = cli_reference_rst(sub, top=False)
        if nested:
            out.append(nested)
    return "\n".join(out)


def exit_status_rst(meanings: dict[int, str]) -> str:
    """The exit statuses (:data:`datasock.errors.EXIT_MEANINGS`) as a list-table."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 10 90", "",
             "   * - Status", "     - Meaning"]
    for status in sorted(meanings):
        text = meanings[status]
        lines += [f"   * - {status}", f"     - {_escape(text[:1].upper() + text[1:])}."]
    return "\n".join(lines) + "\n"


def settings_table_rst(settings: Iterable) -> str:
    """``settings`` (:class:`~datasock.settings.Setting` declarations) as a list-table."""
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 25 20 55", "",
             "   * - Variable", "     - Default", "     - Meaning"]
    for s in settings:
        default = f"``{s.default}``" if s.default is not None else "(unset)"
        lines += [f"   * - ``{s.env}``", f"     - {default}", f"     - {s.help}"]
    return "\n".join(lines) + "\n"
