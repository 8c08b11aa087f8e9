"""The command-line reference for the docs, generated from an argparse parser (pure).

docs/conf.py can write ``cli_reference_rst(datasock.cli.parser())`` into
``docs/_generated/cli_options.rst`` so the configuration reference lists every
command and option the code accepts, the way the settings tables list every
environment variable.
"""
from __future__ import annotations

import argparse
import re


def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name) or ""


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


def cli_reference_rst(parser: argparse.ArgumentParser) -> str:
    """One section per (sub)command: its help line and a table of its arguments and options."""
    prog = parser.prog
    out = []
    for name, sub, help_text in _subcommands(parser):
        command = f"{prog} {name}"
        rows = _option_rows(sub)
        out += [f"``{command}``", "~" * (len(command) + 4), "", _escape(help_text or sub.description or ""), ""]
        if rows:
            out += [".. list-table::", "   :header-rows: 1", "   :widths: 30 15 55", "",
                    "   * - Argument", "     - Default", "     - Meaning"]
            for arg, default, meaning in rows:
                out += [f"   * - ``{arg}``", f"     - {default}", f"     - {_escape(meaning)}"]
            out.append("")
        nested = cli_reference_rst(sub)
        if nested:
            out.append(nested)
    return "\n".join(out)
